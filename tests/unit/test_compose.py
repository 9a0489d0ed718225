"""The compose stack mirrors the local one: same services, healthchecks, init ordering, one .env."""
from __future__ import annotations

import pytest
import yaml

from stack import config, services
from stack.compose import compose  # builds the compose plugin on first use when docker lacks it

pytestmark = pytest.mark.unit


def test_compose_file_is_valid():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_has_every_local_service_with_a_healthcheck():
    result = compose("config", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(result.stdout)["services"]
    local = [svc.name for svc in services.all_services(config.load())]
    for name in local:
        assert "healthcheck" in spec[name], f"{name} has no healthcheck in docker-compose.yml"
        for binding in spec[name].get("ports", []):
            assert binding["host_ip"] == "127.0.0.1", f"{name} publishes a port beyond 127.0.0.1"
    # one-shot init services gate what depends on them
    assert spec["connect"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert spec["connect"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert spec["migrate"]["depends_on"]["postgres-init"]["condition"] == "service_completed_successfully"
    assert spec["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    # images are pinned, never floating
    for name, svc in spec.items():
        assert ":" in svc["image"] and not svc["image"].endswith(":latest"), f"{name} image is not pinned"


def test_compose_reads_the_same_env_file():
    result = compose("config", "--format", "yaml")
    spec = yaml.safe_load(result.stdout)["services"]
    settings = config.load()
    assert spec["postgres"]["environment"]["POSTGRES_PASSWORD"] == settings["POSTGRES_PASSWORD"]
    assert spec["minio"]["environment"]["MINIO_ROOT_USER"] == settings["MINIO_ROOT_USER"]

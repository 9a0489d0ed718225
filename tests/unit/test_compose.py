"""The compose stack mirrors the local one: same services, healthchecks, init ordering, one .env."""
from __future__ import annotations

import pytest
import yaml

from platform_common import config
from stack import services
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
    assert spec["postgres"]["environment"]["POSTGRES_PASSWORD"] == settings.postgres_password
    assert spec["minio"]["environment"]["MINIO_ROOT_USER"] == settings.minio_root_user


# -- the settings both deployments share (declared in stack/, repeated in docker-compose.yml) ----------
REPO = config.REPO


def compose_file() -> dict:
    """docker-compose.yml as written (anchors resolved, ${...} left as they are)."""
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line and not line.startswith("#") and "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def flink_properties(service: dict) -> dict[str, str]:
    return dict((part.strip() for part in line.split(":", 1))
                for line in service["environment"]["FLINK_PROPERTIES"].splitlines() if line.strip())


@pytest.mark.parametrize("service", ["flink-jobmanager", "flink-taskmanager"])
def test_compose_flink_runs_with_the_local_cluster_settings(service):
    from stack import flink
    props = flink_properties(compose_file()[service])
    differ = {key: (value, props.get(key)) for key, value in flink.CLUSTER.items() if props.get(key) != value}
    assert not differ, f"docker-compose.yml {service} FLINK_PROPERTIES differ from stack/flink.py CLUSTER: {differ}"
    defaults = env_example()
    for key, name in flink.FROM_SETTINGS.items():
        assert props.get(key) == f"${{{name}:-{defaults[name]}}}", (key, props.get(key))


def test_compose_airflow_runs_with_the_local_settings():
    from stack import airflow
    spec = compose_file()
    defaults = env_example()
    for name in ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer"):
        env = {key: str(value) for key, value in spec[name]["environment"].items()}
        differ = {key: (value, env.get(key)) for key, value in airflow.SHARED.items() if env.get(key) != value}
        assert not differ, f"docker-compose.yml {name} environment differs from stack/airflow.py SHARED: {differ}"
        for key in ("AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"):
            assert env[key] == f"${{AIRFLOW_PARALLELISM:-{defaults['AIRFLOW_PARALLELISM']}}}", (name, key, env[key])

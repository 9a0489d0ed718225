"""The dashboards bundle (superset/bundle) and how the stack fills it in: URIs and passwords from
.env, never from git; every chart belongs to a dashboard and reads a dataset of the bundle."""
from __future__ import annotations

import io
import re
import zipfile

import pytest
import yaml

from platform_common import config
from platform_common.config import ensure_env_file
from platform_common.errors import StackError
from stack import superset

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / ".env"
    ensure_env_file(path)
    return config.load(path, environ={"CLICKHOUSE_HOST": "clickhouse", "POSTGRES_HOST": "db.internal"})


def _load(kind: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((superset.BUNDLE / kind).rglob("*.yaml"))]


def test_database_uris_and_passwords_come_from_env(settings):
    files, passwords = superset.bundle_files(settings)
    ch = yaml.safe_load(files["databases/Platform_ClickHouse_analytics.yaml"])
    pg = yaml.safe_load(files["databases/Platform_PostgreSQL_real-time.yaml"])
    assert ch["sqlalchemy_uri"] == f"clickhousedb://bi_reader:XXXXXXXXXX@clickhouse:{settings.clickhouse_port}/analytics"
    assert pg["sqlalchemy_uri"] == (f"postgresql+psycopg2://bi_reader:XXXXXXXXXX@db.internal:"
                                    f"{settings.postgres_port}/{settings.postgres_db}")
    assert passwords == {"databases/Platform_ClickHouse_analytics.yaml": settings.clickhouse_bi_password,
                         "databases/Platform_PostgreSQL_real-time.yaml": settings.postgres_bi_password}
    names = zipfile.ZipFile(io.BytesIO(superset.bundle_zip(files))).namelist()
    assert "platform_bundle/metadata.yaml" in names and len(names) == len(files)


def test_a_uri_without_a_masked_password_is_refused(settings, tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    (bundle / "databases").mkdir(parents=True)
    (bundle / "metadata.yaml").write_text("version: 1.0.0\ntype: assets\n")
    (bundle / "databases" / "x.yaml").write_text("database_name: x\nsqlalchemy_uri: clickhousedb://u:secret@h/db\n")
    monkeypatch.setattr(superset, "BUNDLE", bundle)
    monkeypatch.setattr(superset, "REPO", tmp_path)
    with pytest.raises(StackError, match=r"^bundle/databases/x.yaml: sqlalchemy_uri must name one \$\{\.\.\._USER\} "
                                         r"and mask its password as XXXXXXXXXX$"):
        superset.bundle_files(settings)


def test_bundle_is_consistent():
    datasets = {d["uuid"] for d in _load("datasets")}
    databases = {d["uuid"] for d in _load("databases")}
    charts = {c["uuid"]: c for c in _load("charts")}
    assert all(d["database_uuid"] in databases for d in _load("datasets"))
    assert all(c["dataset_uuid"] in datasets for c in charts.values())
    assert all(c["query_context"] for c in charts.values()), "the chart data API (refresh) needs a query context"
    on_dashboards = [node["meta"]["uuid"] for d in _load("dashboards") for node in d["position"].values()
                     if isinstance(node, dict) and node.get("type") == "CHART"]
    assert sorted(on_dashboards) == sorted(charts)  # each chart on exactly one dashboard
    assert {d["dashboard_title"]: d["metadata"]["refresh_frequency"] for d in _load("dashboards")} == {
        "Real-time website tracking": 60, "Orders tracking": 60, "Market by country": 0,
        "Customer acquisition by month": 0, "Funnel": 0, "Customer segments": 0, "Churn risk": 0}


def test_compose_runs_superset_after_its_init_jobs():
    from tests.unit.test_compose import compose
    result = compose("config", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(result.stdout)["services"]
    assert spec["superset"]["image"] == spec["superset-init"]["image"] == "apache/superset:6.1.0"
    assert spec["superset-init"]["depends_on"]["postgres-init"]["condition"] == "service_completed_successfully"
    assert spec["superset"]["depends_on"]["superset-init"]["condition"] == "service_completed_successfully"
    assert spec["superset-dashboards"]["depends_on"]["superset"]["condition"] == "service_healthy"
    # the image's environment lacks pydantic-settings (the typed settings): added, pinned as in superset.lock
    assert spec["superset-dashboards"]["entrypoint"] == ["/bin/sh", "-c"]
    command = " ".join(" ".join(spec["superset-dashboards"]["command"]).split())
    pin = re.search(r"^pydantic-settings==\S+", (config.REPO / "requirements" / "superset.lock").read_text(), re.M)
    assert command == (f"uv pip install -q --python /app/.venv/bin/python {pin.group(0)} "
                       f"&& exec python -m stack.superset apply")
    assert spec["superset"]["ports"][0]["host_ip"] == "127.0.0.1"

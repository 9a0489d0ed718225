"""The Airflow services' configuration (stack/airflow.py): all four components share one AIRFLOW__* environment."""
from __future__ import annotations

import base64

import pytest

from platform_common import config
from platform_common.config import REPO, ensure_env_file
from stack import airflow, services

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / ".env"
    ensure_env_file(path)
    return config.load(path, environ={})


def test_components_share_one_configuration(settings):
    by_name = {svc.name: svc for svc in services.all_services(settings)}
    names = ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
    envs = [by_name[n].environment for n in names]
    assert all(env == envs[0] for env in envs)
    assert by_name["airflow-api-server"].command[-4:] == ["--host", "127.0.0.1", "--port", str(settings.airflow_port)]
    assert by_name["airflow-api-server"].port == settings.airflow_port
    for name in names[1:]:
        assert "airflow-api-server" in by_name[name].depends_on
    # streaming_health repairs the streaming side: the scheduler starts after it
    assert {"flink-taskmanager", "cdc-sink"} <= set(by_name["airflow-scheduler"].depends_on)
    # no component serves logs on all interfaces: the api-server reads the files
    assert "--skip-serve-logs" in by_name["airflow-scheduler"].command
    assert "--skip-serve-logs" in by_name["airflow-triggerer"].command


def test_environment(settings):
    env = airflow.environment(settings)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "airflow" / "dags")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_HOME"] == str((settings.data_dir / "airflow").resolve())
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://{settings.postgres_airflow_user}:{settings.postgres_airflow_password}"
        f"@{settings.postgres_host}:{settings.postgres_port}/{settings.airflow_db}")
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == settings.airflow_jwt_secret
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{settings.airflow_port}/execution/"
    # a valid Fernet key (32 url-safe base64 bytes), stable for the same secret
    assert len(base64.urlsafe_b64decode(env["AIRFLOW__CORE__FERNET_KEY"])) == 32
    assert airflow.environment(settings)["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW__CORE__FERNET_KEY"]
    # Airflow holds only its own credentials: not the ClickHouse or superuser passwords
    values = "\n".join(env.values())
    for secret in (settings.clickhouse_password, settings.postgres_password, settings.minio_root_password):
        assert secret not in values


def test_trigger_without_airflow_is_one_line(settings, monkeypatch, capsys):
    monkeypatch.setattr(config, "load", lambda: settings)
    monkeypatch.setattr(airflow, "url", lambda s: "http://127.0.0.1:9")  # nothing listens on the discard port
    assert airflow.main(["trigger", "customer_analytics_pipeline"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: Airflow is not reachable at http://127.0.0.1:9 (ConnectionError); run `make up`"

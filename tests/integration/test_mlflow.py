"""The stack's MLflow tracking server and registry (stack/mlflow.py): basic auth on every request but
/health, 127.0.0.1 only, no secret on a command line or in an API answer; a run logged by the real mlflow
client (holding no storage credentials) lands in PostgreSQL (its own database and role) and its artifacts
and model in s3://bucket/mlflow/ on MinIO; a model version gets the @champion alias; MLflow's MinIO user
can use its prefix and nothing else of the bucket."""
from __future__ import annotations

import io
import ipaddress
import json
import subprocess
import uuid

import psutil
import psycopg
import pytest
import requests
from minio import Minio
from minio.error import S3Error

from stack import minio, mlflow
from stack.supervisor import Supervisor
from tests.conftest import ensure_up

pytestmark = pytest.mark.integration
MLFLOW_PY = mlflow.VENV / "bin" / "python"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=10"


@pytest.fixture(scope="module")
def server(settings):
    return ensure_up(settings, "mlflow")


def secrets_of(settings) -> list[str]:
    return [settings.mlflow_admin_password, settings.mlflow_secret_key, settings.postgres_mlflow_password,
            settings.minio_mlflow_password, settings.minio_root_password]


def admin(settings) -> tuple[str, str]:
    return settings.mlflow_admin_user, settings.mlflow_admin_password


def test_every_request_but_health_needs_the_login(server):
    base = mlflow.url(server)
    assert requests.get(f"{base}/health", timeout=10).text == "OK"
    anonymous = requests.get(f"{base}{SEARCH}", timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(f"{base}{SEARCH}", auth=(server.mlflow_admin_user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    assert requests.get(f"{base}/", timeout=10).status_code == 401   # the UI too
    assert requests.get(f"{base}{SEARCH}", auth=admin(server), timeout=10).status_code == 200
    # the server caches checked logins (auth_cache_ttl_seconds): a cached one admits no other password
    wrong = requests.get(f"{base}{SEARCH}", auth=(server.mlflow_admin_user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401


def test_listens_on_loopback_only_with_no_secret_on_a_command_line(server):
    pid = Supervisor(server).info("mlflow")["pid"]
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    listening = {str(getattr(a, "ipv4_mapped", None) or a) for p in processes
                 for a in (ipaddress.ip_address(c.laddr.ip) for c in p.net_connections("tcp")
                           if c.status == psutil.CONN_LISTEN)}
    assert listening == {"127.0.0.1"}, listening
    # one uvicorn worker, no GenAI job runner: the server and its worker only
    assert len(processes) <= 3, [p.cmdline() for p in processes]
    cmdlines = " ".join(" ".join(p.cmdline()) for p in processes)
    for secret in secrets_of(server):
        assert secret not in cmdlines


def test_a_logged_run_lands_in_postgresql_and_minio_and_the_registry_keeps_a_champion(server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    experiment, model = f"tests-{tag}", f"tests-churn-{tag}"
    code = f"""
import json, mlflow, numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment({experiment!r})
with mlflow.start_run() as run:
    mlflow.log_param("max_leaf_nodes", 6)
    mlflow.log_metric("auc", 0.8475)
    mlflow.log_text("band cut-offs", "notes/bands.txt")
    X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", registered_model_name={model!r})
client = MlflowClient()
client.set_registered_model_alias({model!r}, "champion", info.registered_model_version)
champion = client.get_model_version_by_alias({model!r}, "champion")
loaded = mlflow.pyfunc.load_model(f"models:/{model}@champion")
print(json.dumps({{"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "version": champion.version,
                   "predicted": loaded.predict(np.array([[0.0], [3.0]])).tolist()}}))
"""
    # the client's whole environment: the server's address and the login, no storage credentials
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": mlflow.url(server),
           "MLFLOW_TRACKING_USERNAME": server.mlflow_admin_user,
           "MLFLOW_TRACKING_PASSWORD": server.mlflow_admin_password, "MLFLOW_DISABLE_TELEMETRY": "true"}
    result = subprocess.run([str(MLFLOW_PY), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["version"] == "1" and out["predicted"] == [0, 1]

    # the run through the REST API, exactly as logged
    run = requests.get(f"{mlflow.url(server)}/api/2.0/mlflow/runs/get", params={"run_id": out["run_id"]},
                       auth=admin(server), timeout=10).json()["run"]
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"max_leaf_nodes": "6"}
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"auc": 0.8475}

    # the backend store: MLflow's own database, through its own role
    with psycopg.connect(server.postgres_dsn(server.postgres_mlflow_user, server.postgres_mlflow_password,
                                             dbname=server.postgres_mlflow_db)) as conn:
        assert conn.execute("SELECT status FROM runs WHERE run_uuid = %s", (out["run_id"],)).fetchone() == ("FINISHED",)
        assert conn.execute("SELECT version FROM model_versions WHERE name = %s", (model,)).fetchall() == [(1,)]

    # the artifacts, through the server, in the bucket's mlflow/ prefix
    objects = {o.object_name for o in minio.client(server).list_objects(
        server.minio_bucket, prefix=f"{mlflow.ARTIFACTS_PREFIX}/", recursive=True)}
    notes = [o for o in objects if o.endswith(f"/{out['run_id']}/artifacts/notes/bands.txt")]
    assert len(notes) == 1, sorted(objects)[:20]
    assert minio.client(server).get_object(server.minio_bucket, notes[0]).read() == b"band cut-offs"
    assert any(o.endswith("/artifacts/MLmodel") for o in objects)


def test_no_secret_is_readable_through_the_api(server):
    base = mlflow.url(server)
    answers = [requests.get(f"{base}{path}", auth=admin(server), timeout=10).text for path in (
        SEARCH, "/api/3.0/mlflow/server-info", "/api/2.0/mlflow/registered-models/search",
        f"/api/2.0/mlflow/users/get?username={server.mlflow_admin_user}")]
    for secret in [*secrets_of(server), server.minio_mlflow_user + ":", mlflow.backend_uri(server)]:
        assert all(secret not in text for text in answers), secret


def test_mlflows_own_logins_reach_only_its_database_and_prefix(server):
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(server.postgres_dsn(server.postgres_mlflow_user, server.postgres_mlflow_password))
    bucket = server.minio_bucket
    own = Minio(f"{server.minio_host}:{server.minio_port}", access_key=server.minio_mlflow_user,
                secret_key=server.minio_mlflow_password, secure=False)
    list(own.list_objects(bucket, prefix=f"{mlflow.ARTIFACTS_PREFIX}/"))          # allowed
    with pytest.raises(S3Error) as denied:
        list(own.list_objects(bucket, prefix="warehouse/"))
    assert denied.value.code == "AccessDenied"
    root = minio.client(server)
    probe = f"tests-mlflow-denied-{uuid.uuid4().hex[:8]}"
    root.put_object(bucket, probe, io.BytesIO(b"x"), 1)
    try:
        with pytest.raises(S3Error) as denied:
            own.get_object(bucket, probe)
        assert denied.value.code == "AccessDenied"
    finally:
        root.remove_object(bucket, probe)

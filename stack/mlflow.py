"""MLflow: the tracking server and model registry (`mlflow server --app-name basic-auth` on
127.0.0.1:MLFLOW_PORT), from its own virtualenv (.tools/venvs/mlflow, requirements/mlflow.lock: mlflow
pins cachetools below what the spark environment resolves).

- Backend store (runs, metrics, registered models and aliases) and the basic-auth user store: the
  PostgreSQL database POSTGRES_MLFLOW_DB, owned by its own role (sql/postgres/roles.sql); MLflow creates
  its tables with its own migrations on start.
- Artifacts (models, plots): s3://MINIO_BUCKET/mlflow/ on MinIO, written by the server with its own MinIO
  user, whose policy allows that prefix only (stack/minio.py). Clients upload and download through the
  server (proxied artifacts) and hold no storage credentials.
- Every request but /health needs the login MLFLOW_ADMIN_USER/MLFLOW_ADMIN_PASSWORD. No secret is on a
  command line or in a URI: the database password reaches libpq as PGPASSWORD, in the service's
  environment (the 0600 supervisor config).
- One uvicorn worker, and no GenAI job runner or AI gateway (this platform uses neither): 2 processes,
  ~0.6 GB, instead of 15 and ~2.9 GB with the defaults.
"""
from __future__ import annotations

import sys
from pathlib import Path

import requests

from platform_common.config import TOOLS, Settings
from platform_common.errors import StackError
from stack.service import Service

VENV = TOOLS / "venvs" / "mlflow"
AUTH_CACHE_TTL_S = 300  # auth_config(): how long a checked login is trusted
ARTIFACTS_PREFIX = "mlflow"  # under MINIO_BUCKET; stack/minio.py grants the MLflow user this prefix only


def url(settings: Settings) -> str:
    return f"http://{settings.mlflow_host}:{settings.mlflow_port}"


def workdir(settings: Settings) -> Path:
    return settings.data_dir / "mlflow"


def backend_uri(settings: Settings) -> str:
    """The PostgreSQL URI without its password (libpq reads PGPASSWORD)."""
    return (f"postgresql+psycopg2://{settings.postgres_mlflow_user}@{settings.postgres_host}:"
            f"{settings.postgres_port}/{settings.postgres_mlflow_db}")


def auth_config(settings: Settings) -> str:
    """basic_auth.ini: the user store in the same database; admins (the only user) skip permission
    checks, and users added later see nothing until granted.

    auth_cache_ttl_seconds: MLflow's own cache of successful logins (keyed by an HMAC of the password with
    a per-process key). Without it every request re-checks the deliberately slow password hash: ~0.5 s of
    a core each, ~1 s on busy cores, so logging and registering one churn model took 41 s of the first
    pipeline run. The server runs one worker, and a password change or user deletion through the API
    drops the cached entry at once; other changes take effect within the TTL."""
    return ("[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = {backend_uri(settings)}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n")


def environment(settings: Settings) -> dict[str, str]:
    return {
        "MLFLOW_BACKEND_STORE_URI": backend_uri(settings),
        "PGPASSWORD": settings.postgres_mlflow_password,
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{settings.minio_bucket}/{ARTIFACTS_PREFIX}",
        "MLFLOW_S3_ENDPOINT_URL": settings.minio_endpoint,
        "AWS_ACCESS_KEY_ID": settings.minio_mlflow_user,
        "AWS_SECRET_ACCESS_KEY": settings.minio_mlflow_password,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_AUTH_CONFIG_PATH": str((workdir(settings) / "basic_auth.ini").resolve()),
        "MLFLOW_AUTH_ADMIN_USERNAME": settings.mlflow_admin_user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": settings.mlflow_admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": settings.mlflow_secret_key,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_ENABLE_AI_GATEWAY": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def prepare(settings: Settings) -> None:
    workdir(settings).mkdir(parents=True, exist_ok=True)
    workdir(settings).chmod(0o700)
    (workdir(settings) / "basic_auth.ini").write_text(auth_config(settings))


def healthy(settings: Settings) -> bool:
    try:
        return requests.get(f"{url(settings)}/health", timeout=3).text == "OK"
    except requests.RequestException:
        return False


def users(settings: Settings) -> list[tuple[str, str]]:
    """(user, password) of the logins provision() creates: MLFLOW_CHURN_USER, MLFLOW_CHURN_API_USER."""
    return [(settings.mlflow_churn_user, settings.mlflow_churn_password),
            (settings.mlflow_churn_api_user, settings.mlflow_churn_api_password)]


def provision(settings: Settings) -> None:
    """The churn model's own login (MLFLOW_CHURN_USER: it creates its experiment and registered model and so
    manages only those; basic auth's default for other users' objects is NO_PERMISSIONS) and the real-time
    service's (MLFLOW_CHURN_API_USER: nothing of its own, READ where the churn login grants it). Idempotent."""
    admin = (settings.mlflow_admin_user, settings.mlflow_admin_password)
    for user, password in users(settings):
        got = requests.get(f"{url(settings)}/api/2.0/mlflow/users/get", params={"username": user}, auth=admin,
                           timeout=10)
        if got.status_code == 200:
            continue
        made = requests.post(f"{url(settings)}/api/2.0/mlflow/users/create", auth=admin, timeout=10,
                             json={"username": user, "password": password})
        if made.status_code != 200:
            raise StackError(f"mlflow: could not create user {user}: HTTP {made.status_code} {made.text[:200]}")


def service(settings: Settings) -> Service:
    port = settings.mlflow_port
    return Service(
        name="mlflow",
        port=port,
        port_setting="MLFLOW_PORT",
        url=url(settings),
        # a request left open (a browser's) must not hold a stop for minutes: 10 s of graceful shutdown
        command=[str(VENV / "bin" / "mlflow"), "server", "--app-name", "basic-auth",
                 "--host", settings.mlflow_host, "--port", str(port), "--workers", "1",
                 "--uvicorn-opts", "--timeout-graceful-shutdown 10"],
        healthy=lambda: healthy(settings),
        depends_on=("postgres", "minio"),
        prepare=lambda: prepare(settings),
        provision=lambda: provision(settings),
        environment=environment(settings),
        stop_wait_seconds=20,
    )


def main(argv: list[str]) -> int:
    """`python -m stack.mlflow provision`: create the churn logins (compose's mlflow-init runs it; the
    local stack calls provision() when MLflow is healthy)."""
    from platform_common import config
    if argv != ["provision"]:
        print("usage: python -m stack.mlflow provision", file=sys.stderr)
        return 2
    try:
        settings = config.load()
        provision(settings)
    except (StackError, requests.RequestException) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"mlflow: users {', '.join(user for user, _ in users(settings))} are provisioned")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

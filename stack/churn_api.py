"""churn-api: the real-time churn scoring service (spark_ml/churn/api.py) on 127.0.0.1:CHURN_API_PORT.

uvicorn from the spark virtualenv (the model's own libraries: scikit-learn, the MLflow client), one
worker process. It starts without a model: until the pipeline's score_churn has promoted a first
@champion it answers 503 to scores, and loads the champion within CHURN_API_REFRESH_SECONDS of it.
Its logins: PostgreSQL POSTGRES_CHURN_API_USER (raw events, read only), ClickHouse's read-only BI
user, MLflow's churn user (the model's registry entry). Every request but /health needs
CHURN_API_TOKEN.
"""
from __future__ import annotations

import requests

from platform_common.config import REPO, TOOLS, Settings
from stack.service import Service

VENV = TOOLS / "venvs" / "spark"


def url(settings: Settings) -> str:
    return f"http://{settings.churn_api_host}:{settings.churn_api_port}"


def healthy(settings: Settings) -> bool:
    try:
        return requests.get(f"{url(settings)}/health", timeout=3).json().get("status") == "ok"
    except (requests.RequestException, ValueError):
        return False


def command(settings: Settings, port: int | None = None) -> list[str]:
    """uvicorn serving the app (tests and the benchmark start their own on another port)."""
    return [str(VENV / "bin" / "python"), "-m", "uvicorn", "spark_ml.churn.api:create_app", "--factory",
            "--host", settings.churn_api_host, "--port", str(port or settings.churn_api_port),
            "--workers", "1", "--no-access-log", "--timeout-graceful-shutdown", "5", "--app-dir", str(REPO)]


def service(settings: Settings) -> Service:
    return Service(
        name="churn-api",
        port=settings.churn_api_port,
        port_setting="CHURN_API_PORT",
        url=url(settings),
        command=command(settings),
        healthy=lambda: healthy(settings),
        depends_on=("postgres", "clickhouse", "mlflow"),
        stop_wait_seconds=10,
    )

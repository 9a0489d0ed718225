"""`python -m stack where`: the platform's front doors and their logins, printed after `make up` and
by `make demo`. The UI admin passwords are printed (the issue asks `make up` to show them); every
other secret is only named: it is in the git-ignored .env."""
from __future__ import annotations

from rich.table import Table

from platform_common.config import Settings
from stack.ui import console


def show(settings: Settings) -> None:
    table = Table(title="where to look", show_lines=False)
    for column in ("what", "where", "login"):
        table.add_column(column)
    minio_console = settings.minio_endpoint.rsplit(":", 1)[0] + f":{settings.minio_console_port}"
    for what, where, login in (
        ("Superset dashboards", f"http://127.0.0.1:{settings.superset_port}",
         f"{settings.superset_admin_user} / {settings.superset_admin_password}"),
        ("Airflow (DAGs, runs, logs)", f"http://127.0.0.1:{settings.airflow_port}",
         f"{settings.airflow_admin_user} / {settings.airflow_admin_password}"),
        ("MLflow (runs, model registry)", f"http://{settings.mlflow_host}:{settings.mlflow_port}",
         f"{settings.mlflow_admin_user} / {settings.mlflow_admin_password}"),
        ("Churn scoring API (real time)",
         f"http://{settings.churn_api_host}:{settings.churn_api_port}/v1/churn/score",
         "Bearer CHURN_API_TOKEN in .env"),
        ("Flink Web UI (streaming job)", settings.flink_rest_url, "-"),
        ("MinIO console (Iceberg lake)", minio_console, "MINIO_ROOT_USER / MINIO_ROOT_PASSWORD in .env"),
        ("ClickHouse HTTP (marts, ml.*)", f"http://{settings.clickhouse_host}:{settings.clickhouse_port}",
         "CLICKHOUSE_BI_USER / CLICKHOUSE_BI_PASSWORD in .env (read-only)"),
        ("PostgreSQL (crm, raw, realtime)", f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}",
         "POSTGRES_BI_USER / POSTGRES_BI_PASSWORD in .env (read-only)"),
        ("Jupyter (cluster analysis)", "make notebook → http://127.0.0.1:8888", "JUPYTER_TOKEN in .env"),
        ("dbt docs", "make dbt_docs_serve → http://127.0.0.1:8085", "-"),
    ):
        table.add_row(what, where, login)
    console.print(table)
    console.print(f"logs: {settings.data_dir / 'logs'} (make logs s=<service>)   credentials: .env   stop: make down")

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
    minio_console = settings["MINIO_ENDPOINT"].rsplit(":", 1)[0] + f":{settings['MINIO_CONSOLE_PORT']}"
    for what, where, login in (
        ("Superset dashboards", f"http://127.0.0.1:{settings['SUPERSET_PORT']}",
         f"{settings['SUPERSET_ADMIN_USER']} / {settings['SUPERSET_ADMIN_PASSWORD']}"),
        ("Airflow (DAGs, runs, logs)", f"http://127.0.0.1:{settings['AIRFLOW_PORT']}",
         f"{settings['AIRFLOW_ADMIN_USER']} / {settings['AIRFLOW_ADMIN_PASSWORD']}"),
        ("MLflow (runs, model registry)", f"http://{settings['MLFLOW_HOST']}:{settings['MLFLOW_PORT']}",
         f"{settings['MLFLOW_ADMIN_USER']} / {settings['MLFLOW_ADMIN_PASSWORD']}"),
        ("Churn scoring API (real time)",
         f"http://{settings['CHURN_API_HOST']}:{settings['CHURN_API_PORT']}/v1/churn/score",
         "Bearer CHURN_API_TOKEN in .env"),
        ("Flink Web UI (streaming job)", settings["FLINK_REST_URL"], "-"),
        ("MinIO console (Iceberg lake)", minio_console, "MINIO_ROOT_USER / MINIO_ROOT_PASSWORD in .env"),
        ("ClickHouse HTTP (marts, ml.*)", f"http://{settings['CLICKHOUSE_HOST']}:{settings['CLICKHOUSE_PORT']}",
         "CLICKHOUSE_BI_USER / CLICKHOUSE_BI_PASSWORD in .env (read-only)"),
        ("PostgreSQL (crm, raw, realtime)", f"{settings.postgres_host}:{settings.postgres_port}/{settings['POSTGRES_DB']}",
         "POSTGRES_BI_USER / POSTGRES_BI_PASSWORD in .env (read-only)"),
        ("Jupyter (cluster analysis)", "make notebook → http://127.0.0.1:8888", "JUPYTER_TOKEN in .env"),
        ("dbt docs", "make dbt_docs_serve → http://127.0.0.1:8085", "-"),
    ):
        table.add_row(what, where, login)
    console.print(table)
    console.print(f"logs: {settings.data_dir / 'logs'} (make logs s=<service>)   credentials: .env   stop: make down")

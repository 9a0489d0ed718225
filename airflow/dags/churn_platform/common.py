"""Paths, assets, default_args and the failure callback every platform DAG uses.

Each component runs in its own environment: dbt from .tools/venvs/dbt (through airflow/bin/dbt),
Spark ML from .tools/venvs/spark, the stack's tooling (Flink submission, Superset refresh) from the
main .venv. Those commands load .env themselves, so Airflow only holds its own credentials.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset

from platform_common import contracts

REPO = Path(__file__).resolve().parents[3]
MAIN_PYTHON = REPO / ".venv" / "bin" / "python"
SPARK_PYTHON = REPO / ".tools" / "venvs" / "spark" / "bin" / "python"
DBT_PROJECT = REPO / "dbt"
DBT_EXECUTABLE = REPO / "airflow" / "bin" / "dbt"

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

# one Spark job at a time on this 2-core machine (created with 1 slot by `make up`)
SPARK_POOL = contracts.SPARK_POOL
# the connection the DAGs write ops.alerts / ops.incidents through (AIRFLOW_CONN_PLATFORM_POSTGRES)
PLATFORM_POSTGRES = "platform_postgres"

PIPELINE_DAG_ID = contracts.PIPELINE_DAG_ID
# how the segment task reaches Spark: "connect" = the stack's long-lived Spark Connect driver (stack/spark.py,
# no Spark start-up per run); "local" = a Spark inside the task (compose's Airflow: Spark Connect sends its
# token without TLS only to a host named localhost)
SPARK_MODE = os.environ.get("PLATFORM_SPARK_MODE", "connect")
# the customer features exported to Iceberg (spark_ml export): what segmentation reads
CUSTOMER_FEATURES = Asset(name="iceberg_customer_features", uri="iceberg://lakehouse/marts/customer_features",
                          group="lakehouse")
# the loaded segmentation run in ClickHouse (spark_ml load): what the dashboards read
CUSTOMER_SEGMENTS = Asset(name="clickhouse_customer_segments", uri="clickhouse://ml/customer_segments",
                          group="warehouse")
# the churn scores of every live customer in ClickHouse (spark_ml churn-score): the Churn risk figures
CHURN_SCORES = Asset(name="clickhouse_churn_scores", uri="clickhouse://ml/churn_scores", group="warehouse")
CHURN_TRAINING_DAG_ID = "churn_model_training"

log = logging.getLogger(__name__)


def cron(expression: str):
    """A cron schedule whose first run, on a newly made platform (no start_date), is the next cron time.

    A bare cron string gives CronTriggerTimetable(run_immediately=False), which Airflow 3.3 does not
    honour: it still runs the cron time just past when the DAG appears within 10% of the period (36 min
    for every 6 h, 16.8 h for weekly; apache/airflow#64162). A `make up` at 00:20 then started the
    pipeline on a still-empty mirror and queued the demo's own run behind it for 90 s. A zero timedelta
    means "only if it is exactly now"."""
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(expression, timezone="UTC", run_immediately=timedelta(0))


def warehouse_table(database: str, table: str) -> Asset:
    """A ClickHouse table as an asset, named like CUSTOMER_SEGMENTS (clickhouse://<database>/<table>)."""
    return Asset(name=f"clickhouse_{database}_{table}", uri=f"clickhouse://{database}/{table}", group="warehouse")


def record_alert(context) -> None:
    """on_failure_callback: a row in ops.alerts, and an e-mail when ALERT_EMAIL_TO and SMTP are set.

    Runs once a task has failed for good (after its retries); an error here is logged, never raised,
    so it cannot hide the task's own failure.
    """
    ti = context["ti"]
    run_id = context["run_id"] if "run_id" in context else getattr(context.get("dag_run"), "run_id", "?")
    error = " ".join(str(context.get("exception") or "failed").split())[:2000]
    log_url = getattr(ti, "log_url", None)
    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        PostgresHook(postgres_conn_id=PLATFORM_POSTGRES).run(
            "INSERT INTO ops.alerts (dag_id, run_id, task_id, try_number, error, log_url) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            parameters=(ti.dag_id, run_id, ti.task_id, getattr(ti, "try_number", None), error, log_url))
    except Exception:  # noqa: BLE001 - the alert must not replace the task's own error
        log.exception("could not record the alert in ops.alerts")
    if os.environ.get("ALERT_EMAIL_TO") and os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT"):
        try:
            from airflow.providers.smtp.hooks.smtp import SmtpHook
            with SmtpHook(smtp_conn_id="smtp_default") as smtp:
                smtp.send_email_smtp(to=os.environ["ALERT_EMAIL_TO"],
                                     subject=f"[airflow] {ti.dag_id}.{ti.task_id} failed",
                                     html_content=f"<p>{error}</p><p>{log_url or ''}</p>")
        except Exception:  # noqa: BLE001
            log.exception("could not send the alert e-mail")


def record_drift_alerts(score_output: str | None, dag_id: str, run_id: str) -> int:
    """One ops.alerts row per feature the scoring run found newly drifted (PSI > 0.2 against the champion's
    training data, and not in that model's previous scoring run), from score_churn's last line
    `churn_score: {json}`; returns how many. No line (a skipped scoring) records nothing."""
    if not score_output or not score_output.startswith("churn_score: "):
        return 0
    summary = json.loads(score_output.split(": ", 1)[1])
    alerts = summary.get("drift_alerts") or []
    if alerts:
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        hook = PostgresHook(postgres_conn_id=PLATFORM_POSTGRES)
        for alert in alerts:
            error = (f"churn drift: {alert['feature']} PSI {alert['psi']:.3f} > 0.2 against the training data of "
                     f"{summary['model']} v{summary['version']} (scoring run {summary['run_id']})")
            hook.run("INSERT INTO ops.alerts (dag_id, run_id, task_id, error) VALUES (%s, %s, %s, %s)",
                     parameters=(dag_id, run_id, "score_churn", error))
    return len(alerts)


DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,  # 30 s, 60 s, ... capped below
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": record_alert,
}


def spark_ml(command: str) -> str:
    """A spark_ml step in the spark environment (it reads .env itself)."""
    return f"{SPARK_PYTHON} -m spark_ml {command}"


def refresh_dashboards_command() -> str:
    """Superset's chart caches, refreshed by the stack's tooling; DASHBOARD_REFRESH_COMMAND overrides it."""
    return os.environ.get("DASHBOARD_REFRESH_COMMAND") or f"{MAIN_PYTHON} -m stack.superset refresh"


def segmentation_tasks():
    """segment (Spark K-Means on the newest Iceberg features) -> load into ClickHouse -> refresh dashboards.

    Used by both customer_analytics_pipeline and customer_segmentation, so the steps are the same task ids.
    """
    from airflow.sdk import task

    @task.bash(cwd=str(REPO), pool=SPARK_POOL)
    def segment() -> str:
        return spark_ml("segment --connect" if SPARK_MODE == "connect" else "segment")

    @task.bash(cwd=str(REPO), outlets=[CUSTOMER_SEGMENTS])
    def load_segments() -> str:
        return spark_ml("load")

    @task.bash(cwd=str(REPO))
    def refresh_dashboards() -> str:
        return refresh_dashboards_command()

    first = segment()
    first >> load_segments() >> refresh_dashboards()
    return first

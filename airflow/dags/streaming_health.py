"""streaming_health: every 5 minutes, check the streaming side, repair what is down, record incidents.

- flink_job: the PyFlink job churn-streaming runs in the Flink cluster (REST); if not, resubmit it
  with `python -m flink_jobs.deploy submit`, which resumes from the latest retained checkpoint.
- connectors: every Debezium connector and task is RUNNING (Kafka Connect REST); a paused one is
  resumed, a failed one restarted (POST /connectors/<name>/restart?includeTasks=true&onlyFailed=true).
- consumer_lag: how far the Flink job's and the CDC sink's consumer groups are behind (Kafka offsets);
  above the Variable streaming_health_max_lag (default 500000) it is an incident (alert only).
- dead_letters: new records in the dead-letter topic since the previous check (Variable
  streaming_health_dead_letters keeps the count) are an incident (bad input upstream).

Each incident becomes a row in ops.incidents (PostgreSQL). A check that could not repair its component
fails after recording it, so the failure callback also records an alert.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Variable, dag, task
from churn_platform import streaming
from churn_platform.common import DEFAULT_ARGS, PLATFORM_POSTGRES, START_DATE

MAX_LAG_VARIABLE = "streaming_health_max_lag"
DEAD_LETTERS_VARIABLE = "streaming_health_dead_letters"


def record(incidents: list[dict], run_id: str) -> list[dict]:
    """Write incidents to ops.incidents; raise when one of them is still unresolved after a repair."""
    if incidents:
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        hook = PostgresHook(postgres_conn_id=PLATFORM_POSTGRES)
        for i in incidents:
            hook.run("INSERT INTO ops.incidents (component, problem, action, resolved, dag_run_id) "
                     "VALUES (%s, %s, %s, %s, %s)",
                     parameters=(i["component"], i["problem"], i["action"], i["resolved"], run_id))
            print(f"incident: {i}")
    failed = [i for i in incidents if not i["resolved"] and not i["action"].startswith("none (")]
    unreachable = [i for i in incidents if i["action"] == "none"]
    if failed or unreachable:
        worst = (failed or unreachable)[0]
        raise RuntimeError(f"{worst['component']}: {worst['problem']}; action: {worst['action']}")
    return incidents


@dag(
    dag_id="streaming_health",
    schedule=timedelta(minutes=5),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=15),
    # a health check retries soon: the next scheduled run is only minutes away anyway
    default_args={**DEFAULT_ARGS, "retries": 1, "retry_delay": timedelta(seconds=20)},
    tags=["streaming", "monitoring", "flink", "debezium", "kafka"],
    doc_md=__doc__,
)
def streaming_health():
    @task
    def flink_job(run_id: str | None = None) -> list[dict]:
        return record(streaming.check_flink_job(), run_id)

    @task
    def connectors(run_id: str | None = None) -> list[dict]:
        return record(streaming.check_connectors(), run_id)

    @task
    def consumer_lag(run_id: str | None = None) -> dict:
        lag, incidents = streaming.check_consumer_lag(int(Variable.get(MAX_LAG_VARIABLE, default=500_000)))
        record(incidents, run_id)
        return lag

    @task
    def dead_letters(run_id: str | None = None) -> int:
        previous = Variable.get(DEAD_LETTERS_VARIABLE, default=None)
        total, incidents = streaming.check_dead_letters(None if previous is None else int(previous))
        record(incidents, run_id)
        Variable.set(DEAD_LETTERS_VARIABLE, str(total))
        return total

    # lag is read once the consumers are back, so a just-restarted job is not reported as lagging
    [flink_job(), connectors()] >> consumer_lag()
    dead_letters()


streaming_health()

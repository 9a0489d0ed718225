"""`airflow dags test` of streaming_health and customer_segmentation against the running stack (Airflow's
CLI from its own venv, the stack's config).

* streaming_health repairs what is down: a paused Debezium connector is resumed, a cancelled Flink job is
  resubmitted from its checkpoint, and each repair is an ops.incidents row with the run's id;
* customer_segmentation (a manual run) writes a new segmentation run to ClickHouse ml.*, from features
  exported here first (dbt build, then spark_ml export: what the pipeline runs before it).

customer_analytics_pipeline is not run here: tests/e2e/test_airflow_pipeline.py triggers it through the
scheduler several times while events stream, and checks every task and every output of it.

customer_segmentation runs on a small simulated population that went through the streaming path first
(tests/conftest.py simulated_population).

The scheduled streaming_health DAG is paused while these run, so its repairs are the ones under test, and
each DAG is paused while `airflow dags test` runs it, so the live scheduler does not run its tasks too.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
import requests

from flink_jobs import deploy
from platform_common import clients, config, flink_rest
from platform_common.config import REPO
from stack import airflow
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def airflow_client(stack_up):
    return airflow.Client(stack_up)


@pytest.fixture(scope="module")
def health_dag_paused(airflow_client):
    """No scheduled streaming_health run repairs what these tests break on purpose."""
    with airflow_client.paused("streaming_health"):
        yield


def dags_test(settings, dag_id: str, timeout: float = 1500) -> tuple[str, str]:
    """Run `airflow dags test <dag_id>`; returns (run id, output). Fails with the output's tail."""
    result = airflow.cli(settings, "dags", "test", dag_id, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow dags test {dag_id} failed:\n{output[-5000:]}"
    match = re.search(r"run_id=(manual__[^\s,'\"]+)", output) or re.search(r"(manual__\d{4}-[\d\-T:.+]+)", output)
    assert match, f"no run id in the output of airflow dags test {dag_id}:\n{output[-2000:]}"
    return match.group(1), output


def incidents(settings, since_id: int) -> list[tuple]:
    with psycopg.connect(settings.postgres_dsn(settings.postgres_airflow_user,
                                               settings.postgres_airflow_password)) as conn:
        return conn.execute("SELECT component, action, resolved, dag_run_id FROM ops.incidents WHERE id > %s "
                            "ORDER BY id", (since_id,)).fetchall()


def last_incident_id(settings) -> int:
    with psycopg.connect(settings.postgres_dsn(settings.postgres_airflow_user,
                                               settings.postgres_airflow_password)) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM ops.incidents").fetchone()[0]


def connector_state(settings, name: str) -> tuple[str, list[str]]:
    status = requests.get(f"{settings.connect_url}/connectors/{name}/status", timeout=10).json()
    return status["connector"]["state"], [t["state"] for t in status["tasks"]]


def test_airflow_role_is_least_privilege(stack_up):
    """The Airflow role may insert and read ops.*, and nothing in the platform's data schemas."""
    with psycopg.connect(stack_up.postgres_dsn(stack_up.postgres_airflow_user,
                                               stack_up.postgres_airflow_password)) as conn:
        conn.execute("SELECT count(*) FROM ops.alerts").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM crm.customers")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ops.incidents")


def test_streaming_health_resumes_a_paused_connector(stack_up, health_dag_paused):
    settings = stack_up
    name = "cdc-crm"
    since = last_incident_id(settings)
    requests.put(f"{settings.connect_url}/connectors/{name}/pause", timeout=30).raise_for_status()
    assert wait_for(lambda: connector_state(settings, name)[0], "PAUSED", timeout=60) == "PAUSED"
    try:
        run_id, _ = dags_test(settings, "streaming_health", timeout=600)
    finally:
        if connector_state(settings, name)[0] == "PAUSED":  # leave the stack as it was whatever happened
            requests.put(f"{settings.connect_url}/connectors/{name}/resume", timeout=30)
    state, tasks = connector_state(settings, name)
    assert state == "RUNNING" and tasks and set(tasks) == {"RUNNING"}
    assert (f"connector:{name}", "resumed", True, run_id) in incidents(settings, since)


def test_streaming_health_resubmits_a_cancelled_flink_job(stack_up, health_dag_paused):
    settings = stack_up
    since = last_incident_id(settings)
    job = flink_rest.running_job(settings)
    assert job, "the streaming job should run before this test"
    deploy.cancel(settings, job["jid"], timeout=120)
    try:
        run_id, _ = dags_test(settings, "streaming_health", timeout=900)
    finally:
        deploy.ensure_job(settings)  # leave the stack as it was whatever happened
    resubmitted = flink_rest.running_job(settings)
    assert resubmitted and resubmitted["state"] == "RUNNING" and resubmitted["jid"] != job["jid"]
    found = [i for i in incidents(settings, since) if i[0] == "flink-job"]
    assert len(found) == 1 and found[0][2] is True and found[0][3] == run_id
    assert found[0][1].startswith("resubmitted from the latest checkpoint")


def test_a_failed_task_records_an_incident_and_an_alert(stack_up, health_dag_paused):
    """With the Flink REST API unreachable, flink_job records the incident, fails after its retry, and the
    failure callback writes ops.alerts; the other checks still succeed and consumer_lag does not run."""
    unreachable = config.load(environ={**os.environ, "FLINK_REST_URL": "http://127.0.0.1:9"})
    since_incident = last_incident_id(stack_up)
    with psycopg.connect(stack_up.postgres_dsn(stack_up.postgres_airflow_user,
                                               stack_up.postgres_airflow_password)) as conn:
        since_alert = conn.execute("SELECT coalesce(max(id), 0) FROM ops.alerts").fetchone()[0]
    result = airflow.cli(unreachable, "dags", "test", "streaming_health", timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    found = incidents(stack_up, since_incident)
    assert [(c, a, r) for c, a, r, _ in found if c == "flink-jobmanager"] == [("flink-jobmanager", "none", False)] * 2
    with psycopg.connect(stack_up.postgres_dsn(stack_up.postgres_airflow_user,
                                               stack_up.postgres_airflow_password)) as conn:
        alerts = conn.execute("SELECT dag_id, task_id, try_number, error FROM ops.alerts WHERE id > %s",
                              (since_alert,)).fetchall()
    assert [(d, t, n) for d, t, n, _ in alerts] == [("streaming_health", "flink_job", 2)]
    assert alerts[0][3] == "flink-jobmanager: REST API unreachable: ConnectionError; action: none"


def _runs(settings) -> set[str]:
    return {r[0] for r in clients.clickhouse(settings).query("SELECT run_id FROM ml.segmentation_runs").result_rows}


def _newest_run(settings) -> tuple:
    return clients.clickhouse(settings).query(
        "SELECT run_id, customers, k, loaded_at FROM ml.segmentation_runs ORDER BY loaded_at DESC LIMIT 1"
    ).result_rows[0]


@pytest.fixture(scope="module")
def exported_features(stack_up, simulated_population):
    """The marts built and customer_features exported to Iceberg, with the same commands as `make batch`."""
    for cmd in ([sys.executable, "dbt/run.py", "build"],
                [str(REPO / ".tools" / "venvs" / "spark" / "bin" / "python"), "-m", "spark_ml", "export"]):
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"


def test_customer_segmentation_by_hand_loads_a_new_run(stack_up, airflow_client, exported_features):
    settings = stack_up
    before = _runs(settings)
    started = time.time()
    # paused: `airflow dags test` runs the tasks in this process, and the live scheduler would also queue
    # the tasks of the run it created (CI: "TI was not in a state where it could be marked as running,
    # previous_state: success", then a deadlock of the tasks after it)
    with airflow_client.paused("customer_segmentation"):
        dags_test(settings, "customer_segmentation", timeout=1200)
    run_id, customers, k, loaded_at = _newest_run(settings)
    assert run_id not in before
    assert loaded_at.timestamp() >= started - 5
    assert customers > 0 and 3 <= k <= 8
    segments = clients.clickhouse(settings).query(
        "SELECT count() FROM ml.customer_segments WHERE run_id = {r:String}", parameters={"r": run_id}).result_rows[0][0]
    assert segments == customers

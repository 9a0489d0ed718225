"""customer_analytics_pipeline triggered through Airflow's REST API (JWT), as `make demo` does, after a small
simulated population went through the streaming path (tests/conftest.py simulated_population): the run
succeeds, every task instance succeeded, and its outputs exist (a new segmentation run in ClickHouse ml.*
covering every customer of the newest feature snapshot, each surviving customer of the population exactly
once, the asset events the pipeline emits, and no alert recorded for the run)."""
from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest

from stack import airflow, clickhouse
from stack.config import REPO
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
DAG = "customer_analytics_pipeline"


def test_pipeline_through_the_rest_api(stack_up, simulated_population):
    settings = stack_up
    prefix, population, _ = simulated_population
    client = airflow.Client(settings)
    ch = clickhouse.client(settings)
    before = {r[0] for r in ch.query("SELECT run_id FROM ml.segmentation_runs").result_rows}
    started = time.time()

    # the demo's command: trigger, print progress, exit 0 only on success
    result = subprocess.run([sys.executable, "-m", "stack.airflow", "trigger", DAG, "--wait", "--timeout", "2200"],
                            cwd=REPO, capture_output=True, text=True, timeout=2300)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    run_id = result.stdout.split(f"triggered {DAG}: ", 1)[1].split()[0]
    assert f"{DAG} succeeded in" in result.stdout

    run = client.run(DAG, run_id)
    assert run["state"] == "success" and run["run_type"] == "manual"
    tis = client.task_instances(DAG, run_id)
    dag_tasks = client.request("GET", f"/dags/{DAG}/tasks")["tasks"]
    assert {ti["task_id"] for ti in tis} == {t["task_id"] for t in dag_tasks}
    assert {ti["task_id"]: ti["state"] for ti in tis if ti["state"] != "success"} == {}
    assert sum(1 for ti in tis if ti["task_id"].endswith("_model_build")) == 13  # one per dbt model

    newest = ch.query("SELECT run_id, customers, loaded_at FROM ml.segmentation_runs "
                      "ORDER BY loaded_at DESC LIMIT 1").result_rows[0]
    assert newest[0] not in before and newest[2].timestamp() >= started
    features = ch.query("SELECT count() FROM analytics.customer_features WHERE snapshot_date = "
                        "(SELECT max(snapshot_date) FROM analytics.customer_features)").result_rows[0][0]
    assert newest[1] == features > 0
    segmented = [r[0] for r in ch.query("SELECT customer_id FROM ml.customer_segments WHERE run_id = {r:String} "
                                        "AND startsWith(customer_id, {p:String})",
                                        parameters={"r": newest[0], "p": prefix}).result_rows]
    assert len(segmented) == len(set(segmented)) == len(population.final) > 0
    assert set(segmented) == set(population.final)

    # the run emitted its assets: the two the DAGs schedule on, and one per dbt model (cosmos lineage)
    events = client.request("GET", "/assets/events", params={"source_dag_id": DAG, "source_run_id": run_id,
                                                             "limit": 100})
    uris = {e["uri"] for e in events["asset_events"]}
    assert {"iceberg://lakehouse/marts/customer_features", "clickhouse://ml/customer_segments"} <= uris
    assert sum(1 for u in uris if u.startswith("clickhouse://") and "/analytics/" in u) == 13
    # customer_segmentation ran on the features asset and skipped: the pipeline segmented them itself
    downstream = [r for r in client.request("GET", "/dags/customer_segmentation/dagRuns",
                                            params={"run_after_gte": run["start_date"]})["dag_runs"]
                  if r["run_type"] == "asset_triggered"]
    assert len(downstream) == 1
    assert wait_for(lambda: client.run("customer_segmentation", downstream[0]["dag_run_id"])["state"], "success",
                    timeout=120, interval=2) == "success"
    states = {ti["task_id"]: ti["state"]
              for ti in client.task_instances("customer_segmentation", downstream[0]["dag_run_id"])}
    assert states == {"needs_segmentation": "success", "segment": "skipped", "load_segments": "skipped",
                      "refresh_dashboards": "skipped"}
    with psycopg.connect(settings.postgres_dsn("POSTGRES_AIRFLOW_USER", "POSTGRES_AIRFLOW_PASSWORD")) as conn:
        assert conn.execute("SELECT count(*) FROM ops.alerts WHERE run_id = %s", (run_id,)).fetchone() == (0,)

"""A DAG paused for the length of a test, caught between runs (Airflow's REST API, the stack's client)."""
from __future__ import annotations

import time
from contextlib import contextmanager

from tests.support.waiting import wait_for


@contextmanager
def paused(client, dag_id: str):
    """Pause `dag_id` while no run of it is active; restore its previous state after.

    A run must not be in flight when the pause lands: Airflow lets a paused DAG's running tasks finish
    but leaves their downstream tasks scheduled, so that run would stay `running` until the unpause.
    So: wait until no run is active, pause, and if a run started in between, unpause and wait again."""
    before = client.wait_for_dag(dag_id)["is_paused"]

    def active() -> list:
        return client.request("GET", f"/dags/{dag_id}/dagRuns", params={"state": ["running", "queued"]})["dag_runs"]
    deadline = time.monotonic() + 600
    while True:
        assert wait_for(lambda: not active(), True, timeout=300, interval=2), f"a {dag_id} run did not finish: {active()}"
        client.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
        if not active():
            break
        client.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert time.monotonic() < deadline, f"{dag_id} kept starting runs while being paused"
    try:
        yield
    finally:
        client.request("PATCH", f"/dags/{dag_id}", json={"is_paused": before})

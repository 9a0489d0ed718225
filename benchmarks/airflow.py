"""Benchmark: Airflow in the local stack: install, start, memory, and the pipeline's task durations.

  install        `uv venv` + `uv pip sync requirements/airflow.lock` into a temporary folder
                 (warm uv cache; --cold uses an empty cache, so everything is downloaded from PyPI)
  start          with --restart: stop the four Airflow services and `stack up` them again
                 (db migrate, pool, each component until /api/v2/monitor/health reports it); down meanwhile
  memory         resident memory of each component: the process alone and its whole tree (the
                 scheduler's tree holds the LocalExecutor's workers and the running tasks)
  pipeline       with --run: trigger customer_analytics_pipeline through the REST API and wait; else the
                 newest successful run. Per task: duration (dbt tasks summed by kind), and the run's wall time

    python benchmarks/airflow.py [--cold] [--restart] [--run]
    make bench b=airflow
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from stack import airflow, config, lifecycle, services  # noqa: E402
from stack.config import REPO  # noqa: E402
from stack.supervisor import Supervisor  # noqa: E402

UV = REPO / ".venv" / "bin" / "uv"
COMPONENTS = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
DAG = "customer_analytics_pipeline"


def install_seconds(cold: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(UV), "venv", "-q", "--python", "python3.11", f"{tmp}/venv"], check=True)
        t0 = time.monotonic()
        subprocess.run([str(UV), "pip", "sync", "-q", *(["--no-cache"] if cold else []), "--python",
                        f"{tmp}/venv/bin/python", str(REPO / "requirements" / "airflow.lock")], check=True)
        return time.monotonic() - t0


def restart_seconds(settings) -> float:
    sup = Supervisor(settings)
    for name in reversed(COMPONENTS):
        sup.stop(name)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "stack", "up", *COMPONENTS], cwd=REPO, check=True, capture_output=True)
    return time.monotonic() - t0


def memory(settings) -> list[tuple[str, float, float]]:
    sup = Supervisor(settings)
    rows = []
    for name in COMPONENTS:
        pid = (sup.info(name) or {}).get("pid")
        own = psutil.Process(pid).memory_info().rss / 2**20 if pid else float("nan")
        rows.append((name, own, lifecycle.rss_mib(pid) or float("nan")))
    return rows


def _seconds(ti) -> float:
    return ti["duration"] or 0.0


def pipeline(client: airflow.Client, run: bool) -> tuple[str, float, list[tuple[str, float]]]:
    if run:
        run_id = client.trigger(DAG)
        final = client.wait(DAG, run_id, timeout=3600, progress=lambda line: None)
        if final["state"] != "success":
            raise SystemExit(f"error: {DAG} run {run_id} {final['state']}")
    runs = client.request("GET", f"/dags/{DAG}/dagRuns", params={"state": "success", "order_by": "-start_date",
                                                                 "limit": 1})["dag_runs"]
    if not runs:
        raise SystemExit(f"error: no successful {DAG} run yet; run with --run")
    final = runs[0]
    tis = client.task_instances(DAG, final["dag_run_id"])
    wall = (datetime.fromisoformat(final["end_date"]) - datetime.fromisoformat(final["start_date"])).total_seconds()
    rows = [(ti["task_id"], _seconds(ti)) for ti in tis if not ti["task_id"].startswith("dbt_build.")]
    models = [ti for ti in tis if ti["task_id"].endswith("_model_build")]
    tests = [ti for ti in tis if ti["task_id"].startswith("dbt_build.") and ti not in models]
    group = [ti for ti in models + tests if ti["start_date"] and ti["end_date"]]
    group_wall = (max(datetime.fromisoformat(ti["end_date"]) for ti in group)
                  - min(datetime.fromisoformat(ti["start_date"]) for ti in group)).total_seconds() if group else 0.0
    dbt = [("dbt_build task group, wall time", group_wall),
           (f"dbt_build: {len(models)} model tasks (sum of durations)", sum(map(_seconds, models)))]
    dbt += [(f"  {ti['task_id'].removeprefix('dbt_build.')}", _seconds(ti))
            for ti in sorted(models, key=lambda t: t["start_date"] or "")]
    dbt += [(f"dbt_build: {len(tests)} multi-model test tasks (sum of durations)", sum(map(_seconds, tests))),
            ("  longest of them", max(map(_seconds, tests), default=0.0))]
    rows[1:1] = dbt
    return final["dag_run_id"], wall, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="install with an empty uv cache (downloads from PyPI)")
    parser.add_argument("--restart", action="store_true", help="restart the Airflow services and time it")
    parser.add_argument("--run", action="store_true", help="trigger a new pipeline run and time it")
    args = parser.parse_args()
    settings = config.load()
    console = Console()
    table = Table(title="Airflow on this machine")
    for column in ("what", "value"):
        table.add_column(column)
    table.add_row(f"install airflow venv ({'cold' if args.cold else 'warm'} uv cache)", f"{install_seconds(args.cold):.1f} s")
    if args.restart:
        table.add_row("restart the 4 components (stack up)", f"{restart_seconds(settings):.1f} s")
    for name, own, tree in memory(settings):
        table.add_row(f"RSS {name} (process / tree)", f"{own:.0f} / {tree:.0f} MiB")
    run_id, wall, rows = pipeline(airflow.Client(settings), args.run)
    table.add_row(f"{DAG} wall time ({run_id})", f"{wall:.0f} s")
    for task_id, seconds in rows:
        table.add_row(f"  {task_id}", f"{seconds:.1f} s")
    table.caption = "task durations overlap: up to AIRFLOW_PARALLELISM tasks run at once"
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

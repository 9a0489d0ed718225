"""Benchmark: Airflow in the local stack: install, start, memory, and the pipeline's task durations.

  install        `uv venv` + `uv pip sync requirements/airflow.lock` into a temporary folder
                 (warm uv cache; --cold uses an empty cache, so everything is downloaded from PyPI)
  start          with --restart: stop the four Airflow services and `stack up` them again
                 (db migrate, pool, each component until /api/v2/monitor/health reports it); down meanwhile
  memory         resident memory of each component: the process alone and its whole tree (the
                 scheduler's tree holds the LocalExecutor's workers and the running tasks)
  pipeline       trigger customer_analytics_pipeline through the REST API and wait (--last: the newest
                 successful run instead). Trigger → success, and each stage's span on the run's clock
                 (freshness, cutoff, dbt, export, segment, load, refresh); figures in .data/bench/airflow.json

    python benchmarks/airflow.py [--cold] [--restart] [--last]
    make bench b=airflow
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import psutil
from rich.console import Console
from rich.table import Table

from benchmarks import results
from platform_common import config
from platform_common.config import REPO
from stack import airflow, lifecycle
from stack.supervisor import Supervisor

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


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# the pipeline's stages, in order: each is the span from the first start to the last end of its tasks
STAGES = [("freshness check", lambda t: t == "check_cdc_freshness"),
          ("fix cutoff (frozen mirror)", lambda t: t == "fix_cutoff"),
          ("dbt build (producer + model tasks)", lambda t: t.startswith("dbt_build.")),
          ("export to Iceberg", lambda t: t == "export_features"),
          ("segment (Spark K-Means)", lambda t: t == "segment"),
          ("load segments to ClickHouse", lambda t: t == "load_segments"),
          ("refresh dashboards", lambda t: t == "refresh_dashboards"),
          # beside the segmentation; the first run of a platform also trains the model (no @champion yet)
          ("score churn (and train if no champion)", lambda t: t == "score_churn"),
          ("churn drift alerts", lambda t: t == "churn_drift_alerts")]


def pipeline(client: airflow.Client, run: bool) -> tuple[str, float, list[tuple[str, float, float, float]], dict]:
    """(run id, trigger → success seconds, [(stage, start offset, end offset, seconds)], figures)."""
    triggered = None
    if run:
        triggered = datetime.now(UTC)
        run_id = client.trigger(DAG)
        final = client.wait(DAG, run_id, timeout=3600, progress=lambda line: None)
        if final["state"] != "success":
            raise SystemExit(f"error: {DAG} run {run_id} {final['state']}")
    runs = client.request("GET", f"/dags/{DAG}/dagRuns", params={"state": "success", "order_by": "-start_date",
                                                                 "limit": 1})["dag_runs"]
    if not runs:
        raise SystemExit(f"error: no successful {DAG} run yet; run without --last")
    final = runs[0]
    t0 = triggered or _at(final["queued_at"] or final["start_date"])
    wall = (_at(final["end_date"]) - t0).total_seconds()
    tis = [ti for ti in client.task_instances(DAG, final["dag_run_id"]) if ti["start_date"] and ti["end_date"]]
    stages = []
    for name, member in STAGES:
        mine = [ti for ti in tis if member(ti["task_id"])]
        if mine:
            start = min(_at(ti["start_date"]) for ti in mine)
            end = max(_at(ti["end_date"]) for ti in mine)
            stages.append((name, (start - t0).total_seconds(), (end - t0).total_seconds(),
                           (end - start).total_seconds()))
    dbt = [ti for ti in tis if ti["task_id"].startswith("dbt_build.")]
    producer = next((ti for ti in dbt if ti["task_id"] == "dbt_build.dbt_producer_watcher"), None)
    figures = {"run_id": final["dag_run_id"], "trigger_to_success_s": round(wall, 1),
               "stages": {name: {"start_s": round(a, 1), "end_s": round(b, 1), "seconds": round(d, 1)}
                          for name, a, b, d in stages},
               "dbt_tasks": len(dbt), "dbt_producer_s": round(producer["duration"], 1) if producer else None,
               "retried_tasks": sorted(ti["task_id"] for ti in tis if ti["try_number"] > 1)}
    return final["dag_run_id"], wall, stages, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="install with an empty uv cache (downloads from PyPI)")
    parser.add_argument("--restart", action="store_true", help="restart the Airflow services and time it")
    parser.add_argument("--last", action="store_true",
                        help="report the newest successful pipeline run instead of triggering a new one")
    args = parser.parse_args()
    settings = config.load()
    console = Console()
    table = Table(title="Airflow on this machine")
    for column in ("what", "value"):
        table.add_column(column)
    install = install_seconds(args.cold)
    table.add_row(f"install airflow venv ({'cold' if args.cold else 'warm'} uv cache)", f"{install:.1f} s")
    restart = restart_seconds(settings) if args.restart else None
    if restart is not None:
        table.add_row("restart the 4 components (stack up)", f"{restart:.1f} s")
    rss = memory(settings)
    for name, own, tree in rss:
        table.add_row(f"RSS {name} (process / tree)", f"{own:.0f} / {tree:.0f} MiB")
    run_id, wall, stages, figures = pipeline(airflow.Client(settings), not args.last)
    table.add_row(f"{DAG} trigger → success ({run_id})", f"{wall:.0f} s")
    for name, start, end, seconds in stages:
        table.add_row(f"  {name}", f"{seconds:5.1f} s  (at {start:5.1f} → {end:5.1f} s)")
    table.add_row("  dbt: Airflow tasks / producer's one `dbt build`",
                  f"{figures['dbt_tasks']} / {figures['dbt_producer_s']} s")
    table.add_row("  tasks that needed a retry", ", ".join(figures["retried_tasks"]) or "none")
    table.caption = "stages are spans on the run's clock (from the trigger); gaps between them are scheduling"
    console.print(table)
    results.write(settings, "airflow", {"install_s": round(install, 1), "install_cold_cache": args.cold,
                                        "restart_s": restart, "rss_mib": {n: round(t) for n, _, t in rss},
                                        "pipeline": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())

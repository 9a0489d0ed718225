"""Benchmark: Superset in the local stack: install, start, memory, chart queries and dashboard renders.

  install        `uv venv` + `uv pip sync requirements/superset.lock` into a temporary folder
                 (warm uv cache; --cold uses an empty cache, so everything is downloaded from PyPI)
  start          with --restart: stop the superset service and `stack up superset` again (prepare,
                 gunicorn start until /health answers, bundle import); it is down meanwhile
  memory         resident memory of the service's process tree (gunicorn master + workers)
  health         median GET /health
  chart data     per dashboard: the chart data API forced (a new query on PostgreSQL / ClickHouse)
                 and from the cache (the same request again), median and max over its charts
  render         per dashboard in headless Chromium: from navigation until every chart has drawn

    python benchmarks/superset.py [--cold] [--restart]
    make bench b=superset
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

from platform_common import config
from platform_common.config import REPO
from stack import lifecycle, services, superset
from stack.supervisor import Supervisor
from tests.support import superset_browser as browser

UV = REPO / ".venv" / "bin" / "uv"


def install_seconds(cold: bool) -> tuple[float, float]:
    """(seconds, size in MiB) of a fresh superset virtualenv."""
    with tempfile.TemporaryDirectory() as tmp:
        env_args = ["--cache-dir", str(Path(tmp) / "cache")] if cold else []
        target = Path(tmp) / "venv"
        started = time.monotonic()
        subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(target)], check=True)
        subprocess.run([str(UV), "pip", "sync", "-q", *env_args, "--python", str(target / "bin" / "python"),
                        str(superset.LOCK)], check=True)
        seconds = time.monotonic() - started
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20
    return seconds, size


def restart_seconds(settings) -> float:
    Supervisor(settings).rpc().stopProcess("superset", True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "stack", "up", "superset"], cwd=REPO, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="install with an empty uv cache (downloads from PyPI)")
    parser.add_argument("--restart", action="store_true", help="also time a restart of the superset service")
    args = parser.parse_args()
    settings = config.load()
    svc = next(s for s in services.all_services(settings) if s.name == "superset")
    if not svc.healthy():
        print("error: Superset is not running; start it with `make up s=superset`", file=sys.stderr)
        return 1
    console = Console()
    table = Table(title="Superset on this machine")
    for column in ("measure", "value"):
        table.add_column(column)

    seconds, size = install_seconds(args.cold)
    table.add_row(f"install superset venv ({'cold' if args.cold else 'warm'} uv cache)", f"{seconds:.1f} s ({size:.0f} MiB)")
    if args.restart:
        table.add_row("restart: stop, then `stack up superset` until healthy + bundle applied",
                      f"{restart_seconds(settings):.1f} s")
    row = next(r for r in lifecycle.rows(settings, [svc]))
    table.add_row(f"memory (RSS, gunicorn master + {settings.superset_workers} workers)", f"{row.rss_mib:.0f} MiB")
    health = []
    for _ in range(20):
        t0 = time.monotonic()
        requests.get(f"{superset.url(settings)}/health", timeout=5).raise_for_status()
        health.append(time.monotonic() - t0)
    table.add_row("GET /health (median of 20)", f"{statistics.median(health) * 1000:.1f} ms")
    t0 = time.monotonic()
    counts = superset.apply(settings)
    table.add_row(f"apply the bundle ({counts['charts']} charts, {counts['dashboards']} dashboards)",
                  f"{time.monotonic() - t0:.2f} s")
    console.print(table)

    client = superset.Client(settings)
    charts = Table(title="chart data API and dashboard render (headless Chromium)")
    for column in ("dashboard", "charts", "forced median / max", "cached median / max", "render (all charts drawn)"):
        charts.add_column(column)
    dashboards = superset.platform_dashboards(client)
    timings = {}
    for dashboard in dashboards:
        forced, cached = [], []
        for chart in client.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]:
            for force, into in ((True, forced), (False, cached)):
                t0 = time.monotonic()
                superset.chart_data(client, chart["id"], force=force)
                into.append(time.monotonic() - t0)
        timings[dashboard["slug"]] = (len(forced), forced, cached)
    with browser.logged_in_page(settings) as page:
        for dashboard in dashboards:
            n, forced, cached = timings[dashboard["slug"]]
            render, _ = browser.open_dashboard(page, settings, dashboard["slug"], n)
            charts.add_row(dashboard["dashboard_title"], str(n),
                           f"{statistics.median(forced) * 1000:.0f} / {max(forced) * 1000:.0f} ms",
                           f"{statistics.median(cached) * 1000:.0f} / {max(cached) * 1000:.0f} ms", f"{render:.2f} s")
    console.print(charts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the whole batch at scale: dbt build (full and incremental), export, segmentation.

For each customer count, a throw-away CDC mirror `cdc_scale_<id>` is filled directly inside
ClickHouse with simulator-shaped data, NOT through Kafka, Flink and CDC: benchmarks/dbt_build.py's
generator (customers with the simulator's countries, channels and tiers; sessions of web events with
its funnel; an order per successful checkout). At 60 days that is ~145 web events per customer.
Then, each stage as the pipeline runs it, into throw-away places:

  dbt full      `dbt build` of every model and test into schema `dbt_scale_<id>`
  dbt incr.     `dbt build` again after 1% of customers got a session and an order, 0.5% changed
                tier and 0.1% were deleted
  export        `python -m spark_ml export` of that schema's customer_features into the Iceberg
                scope `scale_<id>` (spark_ml/scope.py)
  segment       `python -m spark_ml segment --connect --scope scale_<id>` on the stack's Spark
                Connect server (k search on a ~50k sample above 50k customers, whose model segments all)

batch = dbt full + export + segment (the issue's target: 1M customers under 10 minutes). Peak memory
is sampled every 0.25 s: the stage's own process tree, and the ClickHouse and Spark servers it works
in (their resident memory, whole process tree). Everything is dropped at the end. Needs the stack up
(`make up`); figures in .data/bench/batch_scale.json.

    python benchmarks/batch_scale.py [--customers 100000 1000000] [--days 60]
    make bench b=batch_scale
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import results
from benchmarks.dbt_build import dbt_build, generate, increment
from platform_common import clients, config
from platform_common.config import REPO
from stack import lifecycle
from stack.supervisor import Supervisor
from tests.support.cdc_mirror import create_mirror

SPARK_PY = REPO / ".tools" / "venvs" / "spark" / "bin" / "python"
TARGET_S = 600


class PeakMemory:
    """Peak resident memory (MiB) of named process trees while the block runs; `own` is the stage's
    process (set once it starts; the benchmark's own process when the stage runs in it)."""

    def __init__(self, servers: dict[str, int | None]):
        self.servers, self.own = servers, None
        self.peak = {"stage": 0, **dict.fromkeys(servers, 0)}
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.wait(0.25):
            # lifecycle.rss_mib: a process's whole tree, as `make status` shows it (None once it is gone)
            self.peak["stage"] = max(self.peak["stage"], lifecycle.rss_mib(self.own) or 0)
            for name, pid in self.servers.items():
                self.peak[name] = max(self.peak[name], lifecycle.rss_mib(pid) or 0)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def mib(self) -> dict[str, int]:
        return {k: round(v) for k, v in self.peak.items()}


def run_tracked(cmd: list[str], mem: PeakMemory, timeout: float = 7200) -> str:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mem.own = proc.pid
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:4])} failed:\n{out[-4000:]}")
    return out


def last_json(out: str, prefix: str) -> dict:
    line = next(line for line in reversed(out.splitlines()) if line.startswith(prefix))
    return json.loads(line[len(prefix):])


def scale(client, settings, n: int, days: int, console: Console) -> dict:
    tag = uuid.uuid4().hex[:8]
    cdc_db, schema, scope = f"cdc_scale_{tag}", f"dbt_scale_{tag}", f"scale_{tag}"
    sup = Supervisor(settings)
    servers = {"clickhouse": (sup.info("clickhouse") or {}).get("pid"), "spark": (sup.info("spark") or {}).get("pid")}
    stages: dict[str, dict] = {}

    def stage(name: str, fn):
        with PeakMemory(servers) as mem:
            t = time.perf_counter()
            detail = fn(mem)
            seconds = time.perf_counter() - t
        stages[name] = {"seconds": round(seconds, 1), "peak_rss_mib": mem.mib(), **(detail or {})}
        console.print(f"  {name}: {seconds:.1f}s, peak RSS {mem.mib()}")

    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            create_mirror(client, cdc_db)
            console.print(f"{n:,} customers: generating the mirror ...")
            t = time.perf_counter()
            generate(client, cdc_db, n, days)
            gen_s = time.perf_counter() - t
            events = client.query(f"SELECT count() FROM {cdc_db}.raw_web_events").result_rows[0][0]
            orders = client.query(f"SELECT count() FROM {cdc_db}.raw_purchase_events").result_rows[0][0]
            console.print(f"  {events:,} web events, {orders:,} orders in {gen_s:.1f}s")

            def dbt(mem):
                mem.own = None
                wall, models, summary, top = dbt_build(schema, cdc_db, workdir, on_start=lambda pid: setattr(mem, "own", pid))
                return {"models_seconds": round(models, 1), "summary": summary, "slowest_nodes": top}

            stage("dbt full", dbt)
            increment(client, cdc_db, n, days)
            stage("dbt incremental", dbt)
            features = client.query(f"SELECT count() FROM {schema}.customer_features").result_rows[0][0]
            stage("export", lambda mem: {"rows": last_json(run_tracked(
                [str(SPARK_PY), "-m", "spark_ml", "export", "--source", f"{schema}.customer_features",
                 "--scope", scope], mem), "export: ")["rows"]})
            stage("segment", lambda mem: {k: v for k, v in last_json(run_tracked(
                [str(SPARK_PY), "-m", "spark_ml", "segment", "--connect", "--scope", scope], mem),
                "segment: ").items() if k in ("customers", "k", "silhouette", "timings")})
    finally:
        subprocess.run([str(SPARK_PY), "-m", "spark_ml", "drop-scope", "--scope", scope], cwd=REPO,
                       capture_output=True)
        for db in (schema, cdc_db):
            client.command(f"DROP DATABASE IF EXISTS {db}")
    batch = sum(stages[s]["seconds"] for s in ("dbt full", "export", "segment"))
    return {"customers": n, "days": days, "web_events": events, "orders": orders, "feature_rows": features,
            "generate_seconds": round(gen_s, 1), "stages": stages, "batch_seconds": round(batch, 1),
            "target_seconds": TARGET_S, "met": batch < TARGET_S}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--days", type=int, default=60)
    args = ap.parse_args()
    settings = config.load()
    client = clients.clickhouse(settings, send_receive_timeout=7200)
    console = Console(width=150)
    runs = [scale(client, settings, n, args.days, console) for n in args.customers]
    table = Table(title=f"the batch at scale: simulator-shaped mirror filled in ClickHouse directly, {args.days} days, "
                        "this machine", caption="peak RSS: the stage's processes / ClickHouse server / Spark server")
    for col in ("customers", "web events", "stage", "seconds", "peak RSS MiB", "detail"):
        table.add_column(col, justify="right" if col not in ("stage", "detail") else "left")
    for r in runs:
        for i, (name, s) in enumerate(r["stages"].items()):
            m = s["peak_rss_mib"]
            detail = (s.get("summary", "").split(" SKIP")[0] if name.startswith("dbt") else
                      f"{s['rows']:,} rows" if name == "export" else f"k={s['k']}, {s['timings']['total_seconds']}s in Spark")
            table.add_row(f"{r['customers']:,}" if i == 0 else "", f"{r['web_events']:,}" if i == 0 else "", name,
                          f"{s['seconds']:.1f}", f"{m['stage']:,} / {m['clickhouse']:,} / {m['spark']:,}", detail)
        table.add_row("", "", "[b]batch[/] (dbt full + export + segment)", f"[b]{r['batch_seconds']:.1f}[/]",
                      "", f"target < {TARGET_S}s: {'met' if r['met'] else 'NOT met'}", end_section=True)
    console.print(table)
    results.write(settings, "batch_scale", {"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

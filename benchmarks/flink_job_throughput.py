"""The Flink job's SQL, old (a git revision) vs. this tree, in an in-process mini cluster: throughput
into blackhole sinks, and parity of every sink's final rows.

Runs with the flink virtualenv, on files from benchmarks/flink_job_data.py:
    .tools/venvs/flink/bin/python benchmarks/flink_job_throughput.py throughput DATA_DIR [--old REV]
        [--variants old:1,new:1,new:2] [--repeat 1]
    .tools/venvs/flink/bin/python benchmarks/flink_job_throughput.py parity DATA_DIR --limit 50000

Each run builds a fresh TableEnvironment (a new mini cluster in the same JVM), reads the same JSON-lines
files (filesystem source, the tests' source columns and watermark), registers the variant's views and
runs all of its INSERTs as one statement set into blackhole sinks with the production sinks' schemas.
The time is from execute() to the job's end (bounded input), so it includes job start-up: an empty
input measures that and is subtracted for the "net" rate. The JVM's CPU time (user + system) over the
run gives records per CPU-second, which holds up when other processes share the cores (the load
average is recorded too). No Kafka, no PostgreSQL, no checkpoints.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_variant(name: str, rev: str | None) -> types.SimpleNamespace:
    """pipeline + streaming_job of a git revision (rev) or of this tree (None)."""
    if rev is None:
        from flink_jobs import pipeline, streaming_job
        return types.SimpleNamespace(name=name, pipeline=pipeline, job=streaming_job, new=True)
    sources = {f: subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:flink_jobs/{f}.py"], check=True,
                                 capture_output=True, text=True).stdout for f in ("pipeline", "streaming_job")}
    pipeline = types.ModuleType(f"{name}_pipeline")
    sys.modules[pipeline.__name__] = pipeline   # dataclasses look their module up
    pipeline.__dict__["__file__"] = str(REPO / "flink_jobs" / "pipeline.py")
    exec(compile(sources["pipeline"], f"{rev}:flink_jobs/pipeline.py", "exec"), pipeline.__dict__)
    job = types.ModuleType(f"{name}_streaming_job")
    sys.modules[job.__name__] = job
    job.__dict__["__file__"] = str(REPO / "flink_jobs" / "streaming_job.py")
    # the revision's own pipeline module, not this tree's
    code = re.sub(r"^from flink_jobs import pipeline\b.*$", "", sources["streaming_job"], flags=re.M)
    job.__dict__["pipeline"] = pipeline
    exec(compile(code, f"{rev}:flink_jobs/streaming_job.py", "exec"), job.__dict__)
    job.pipeline = pipeline
    return types.SimpleNamespace(name=name, pipeline=pipeline, job=job, new=hasattr(pipeline, "function_ddls"))


def udf_jar() -> Path:
    from flink_jobs.tests.conftest import udf_jar as build
    return build()


def make_env(variant, data: Path, parallelism: int, backend: str | None, extra: dict[str, str]):
    from pyflink.table import EnvironmentSettings, TableEnvironment
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    if variant.new:
        variant.job.configure(t_env, checkpointing=False, udf_jar=udf_jar())
    else:
        variant.job.configure(t_env, checkpointing=False)
    conf = t_env.get_config()
    conf.set("parallelism.default", str(parallelism))
    if backend:
        conf.set("state.backend.type", backend)
    for k, v in extra.items():
        conf.set(k, v)
    for name, file, time_field in (("test_web", "web.jsonl", "event_time"), ("test_orders", "orders.jsonl", "order_time")):
        t_env.execute_sql(f"""CREATE TEMPORARY TABLE {name} (
  payload STRING, src_topic STRING, src_partition INT, src_offset BIGINT,
{variant.pipeline.source_columns(time_field)}
) WITH ('connector' = 'filesystem', 'path' = '{data / file}', 'format' = 'json')""")
    variant.job.register_views(t_env, "test_web", "test_orders")
    return t_env


def sink_columns(variant) -> dict[str, str]:
    cols = {name: columns for name, (columns, _table) in variant.job.PG_SINKS.items()}
    cols["sink_dead_letter"] = variant.job.DEAD_LETTER_COLUMNS
    return cols


def run_blackhole(variant, data: Path, parallelism: int, backend: str | None,
                  extra: dict[str, str]) -> tuple[float, float]:
    t_env = make_env(variant, data, parallelism, backend, extra)
    statements = t_env.create_statement_set()
    for sink, columns in sink_columns(variant).items():
        t_env.execute_sql(f"CREATE TEMPORARY TABLE {sink} ({columns}) WITH ('connector' = 'blackhole')")
    for sink, query in variant.job.queries().items():
        statements.add_insert_sql(f"INSERT INTO {sink}\n{query}")
    t0, cpu0 = time.perf_counter(), java_cpu_seconds()
    statements.execute().wait()
    return time.perf_counter() - t0, java_cpu_seconds() - cpu0


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def java_proc() -> Path | None:
    """/proc/<pid> of this process's JVM child (the PyFlink gateway running the mini cluster)."""
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == me and "java" in fields.get("Name", ""):
            return proc
    return None


def java_peak_rss_mib() -> float | None:
    proc = java_proc()
    if proc is None:
        return None
    status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
    return round(int(status["VmHWM"].split()[0]) / 1024)


def java_cpu_seconds() -> float:
    """user + system CPU time of the JVM so far: a rate per CPU-second holds up on a busy machine."""
    proc = java_proc()
    if proc is None:
        return 0.0
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(args) -> None:
    data = args.data.resolve()
    events = count_lines(data / "web.jsonl") + count_lines(data / "orders.jsonl")
    empty = Path(tempfile.mkdtemp(prefix="flink-bench-empty-"))
    for f in ("web.jsonl", "orders.jsonl"):
        (empty / f).write_text("")
    variants = {"old": load_variant("old", args.old), "new": load_variant("new", None)}
    results = []
    for spec in args.variants.split(","):
        name, parallelism, *rest = spec.split(":")
        backend = rest[0] if rest else None
        variant = variants[name]
        startup, startup_cpu = run_blackhole(variant, empty, int(parallelism), backend, {})
        for i in range(args.repeat):
            load0 = os.getloadavg()[0]
            seconds, cpu = run_blackhole(variant, data, int(parallelism), backend, {})
            row = {"variant": name, "rev": args.old if name == "old" else "worktree", "parallelism": int(parallelism),
                   "state_backend": backend or ("rocksdb" if variant.new else "hashmap (cluster default)"),
                   "records": events, "seconds": round(seconds, 2), "startup_seconds": round(startup, 2),
                   "records_per_s": round(events / seconds), "net_records_per_s": round(events / max(seconds - startup, 1e-3)),
                   "jvm_cpu_seconds": round(cpu, 1), "startup_cpu_seconds": round(startup_cpu, 1),
                   "records_per_cpu_s": round(events / max(cpu - startup_cpu, 1e-3)),
                   "loadavg_1m_before": round(load0, 1), "loadavg_1m_after": round(os.getloadavg()[0], 1),
                   "jvm_peak_rss_mib": java_peak_rss_mib(), "run": i + 1}
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def parity(args) -> None:
    """Every sink's final rows from the old and the new SQL on the first --limit records of each file."""
    from pyflink.common import RowKind
    src = args.data.resolve()
    data = Path(tempfile.mkdtemp(prefix="flink-parity-"))
    for f in ("web.jsonl", "orders.jsonl"):
        with (src / f).open() as fh, (data / f).open("w") as out:
            for i, line in enumerate(fh):
                if i >= args.limit:
                    break
                out.write(line)
    outputs = {}
    for variant in (load_variant("old", args.old), load_variant("new", None)):
        t_env = make_env(variant, data, 1, "hashmap", {"pipeline.auto-watermark-interval": "0"})
        sinks = {}
        for sink, query in variant.job.queries().items():
            final: dict = {}
            with t_env.execute_sql(query).collect() as results:
                for row in results:
                    values = tuple(row)
                    if sink == "sink_dead_letter":
                        values = values[:5]        # failed_at is the processing time
                    if row.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
                        final[values] = final.get(values, 0) + 1
                    else:
                        final[values] -= 1
                        if not final[values]:
                            del final[values]
            sinks[sink] = final
            print(variant.name, sink, sum(final.values()), "rows", flush=True)
        outputs[variant.name] = sinks
    report = {}
    for sink in outputs["old"]:
        old, new = outputs["old"][sink], outputs["new"][sink]
        only_old = [r for r in old if r not in new]
        only_new = [r for r in new if r not in old]
        report[sink] = {"old_rows": sum(old.values()), "new_rows": sum(new.values()),
                        "only_old": len(only_old), "only_new": len(only_new),
                        "examples_only_old": [repr(r)[:300] for r in only_old[:3]],
                        "examples_only_new": [repr(r)[:300] for r in only_new[:3]]}
    print(json.dumps(report, indent=2, default=str))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("throughput", "parity"))
    ap.add_argument("data", type=Path)
    ap.add_argument("--old", default="8603bb5", help="git revision of the old job")
    ap.add_argument("--variants", default="old:1,new:1,new:2",
                    help="name:parallelism[:state backend], comma-separated")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--limit", type=int, default=50_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    throughput(args) if args.mode == "throughput" else parity(args)


if __name__ == "__main__":
    main()

"""Benchmark: how the segment job should reach Spark. Its time on a demo-sized population is mostly
Spark starting and warming up, not K-Means; this measures each way of running it on one machine.

  local        a new process per run, Spark local[2] inside it (what the Airflow task does today)
  standalone   a new process per run, submitting to a Spark standalone master and one worker, both
               started here from the pinned pyspark distribution (bin/spark-class), so every run
               also starts an executor
  connect      one Spark Connect server (a long-lived driver on that standalone cluster); each run
               is a thin gRPC client: its first run finds a cold server, the next ones a warm one
  warm         one process that keeps its local[2] session and runs the job again (a long-lived
               session: the lower bound for any service)

The job is segmentation's own code (spark_ml.segmentation: feature order, Imputer/scaler pipeline,
the concurrent k search with n_init starts per k) on synthetic customer features read from a local
Parquet file, so no stack service is needed and every mode reads identical input; the chosen k,
silhouette and training cost of every run are printed, so a mode that changes the result shows.
Ports: 7077 (master), 15002 (Connect), all bound to 127.0.0.1; the master's REST submission server
is off (it would accept jobs from anyone on the machine). Figures in .data/bench/spark_modes.json.

    make bench b=spark_modes
    .tools/venvs/spark/bin/python benchmarks/spark_modes.py --customers 700 --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.spark_venv import hand_over

hand_over("pyspark", __file__)

import pyspark  # noqa: E402 - after hand_over, in the venv that has them

from platform_common import net  # noqa: E402
from spark_ml import features, lake, segmentation  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

SPARK_HOME = Path(pyspark.__file__).parent
MASTER_URL = "spark://127.0.0.1:7077"
CONNECT_URL = "sc://127.0.0.1:15002"


def job(spark, data: str) -> dict:
    """The segment job's Spark work up to the chosen model (no Iceberg, no writes), timed by stage."""
    cfg = segmentation.Config()
    t0 = time.perf_counter()
    df = segmentation.in_feature_order(spark.read.parquet(data)).cache()
    n = df.count()
    t1 = time.perf_counter()
    prep = segmentation._prep_pipeline().fit(df)
    X = prep.transform(df).select(features.KEY, "snapshot_date", "features", *features.PROFILE_FEATURES).cache()
    X.count()
    t2 = time.perf_counter()
    k, _, _, search = segmentation.choose_k(X, n, cfg)
    t3 = time.perf_counter()
    X.unpersist()
    df.unpersist()
    return {"customers": n, "load_s": t1 - t0, "prepare_s": t2 - t1, "k_search_s": t3 - t2, "k": k,
            "silhouette": search["silhouette"], "training_cost": search["training_cost"]}


def session(mode: str):
    if mode == "connect":
        from pyspark.sql import SparkSession
        return SparkSession.builder.remote(CONNECT_URL).getOrCreate()
    os.environ["SPARK_MASTER"] = MASTER_URL if mode == "standalone" else "local[2]"
    return lake.spark_session(f"bench.spark_modes.{mode}", driver_memory="1g")


def child(mode: str, data: str, runs: int) -> None:
    """One client process: a session, then `runs` runs of the job; a JSON line per run."""
    t0 = time.perf_counter()
    spark = session(mode)
    session_s = time.perf_counter() - t0
    for i in range(runs):
        t = time.perf_counter()
        out = job(spark, data)
        print(json.dumps({**out, "session_s": session_s if i == 0 else 0.0, "job_s": time.perf_counter() - t}),
              flush=True)
    spark.stop()


def run_child(mode: str, data: str, runs: int = 1) -> list[dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--data", data, "--runs", str(runs)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"error: the {mode} client failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    rows[0]["process_s"] = wall   # spawn → exit: JVM and Python start-up included
    return rows


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"error: a Spark service exited ({proc.returncode}); see {log}")
        if net.port_open(port):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit(f"error: nothing listens on 127.0.0.1:{port} after {timeout:.0f}s; see {log}")


@contextmanager
def service(name: str, cmd: list[str], port: int, logs: Path, env: dict):
    log = logs / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        started = wait_port(port, proc, log)
        yield started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def spark_env(work: Path) -> dict:
    return {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_DIRS": str(work / "local"), "SPARK_LOG_DIR": str(work / "logs"),
            "SPARK_WORKER_DIR": str(work / "worker"), "PYSPARK_PYTHON": sys.executable,
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}


def cluster(stack: ExitStack, work: Path) -> dict:
    env, logs, cls = spark_env(work), work / "logs", str(SPARK_HOME / "bin" / "spark-class")
    for d in ("local", "logs", "worker"):
        (work / d).mkdir(parents=True, exist_ok=True)
    master_s = stack.enter_context(service("master", [cls, "org.apache.spark.deploy.master.Master", "--host",
                                                       "127.0.0.1", "--port", "7077", "--webui-port", "18080"],
                                           7077, logs, env))
    worker_s = stack.enter_context(service("worker", [cls, "org.apache.spark.deploy.worker.Worker", MASTER_URL,
                                                       "--host", "127.0.0.1", "--port", "17078", "--webui-port", "18081",
                                                       "--cores", "2", "--memory", "3g"], 17078, logs, env))
    return {"master_start_s": master_s, "worker_start_s": worker_s}


def connect_server(stack: ExitStack, work: Path) -> float:
    conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": "15002",
            "spark.driver.host": "127.0.0.1", "spark.driver.memory": "1g", "spark.executor.memory": "1g",
            "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4", "spark.sql.session.timeZone": "UTC",
            "spark.jars": ",".join(lake.spark_jars())}
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
           "--name", "spark-connect", "--master", MASTER_URL]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    env = {**spark_env(work), "SPARK_CONF_DIR": str(work / "conf")}
    (work / "conf").mkdir(exist_ok=True)
    # the server's own INFO log is one line per task: WARN keeps it from costing CPU
    (work / "conf" / "log4j2.properties").write_text(
        "rootLogger.level = warn\nrootLogger.appenderRef.stdout.ref = console\nappender.console.type = Console\n"
        "appender.console.name = console\nappender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d %p %c{1}: %m%n\n")
    return stack.enter_context(service("connect", [*cmd, "spark-internal"], 15002, work / "logs", env))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=700, help="synthetic customers")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    parser.add_argument("--modes", default="local,warm,standalone,connect")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.runs)
        return 0

    import pyarrow.parquet as pq
    from rich.console import Console
    from rich.table import Table

    from benchmarks import results

    # connect last: its server holds the worker's cores while it lives
    order = ["local", "warm", "standalone", "connect"]
    modes = sorted(set(args.modes.split(",")), key=order.index)
    out: dict = {"customers": args.customers, "runs": args.runs, "pyspark": pyspark.__version__, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="spark-modes-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        data = str(work / "features.parquet")
        pq.write_table(features.synthetic_arrow(args.customers)[0], data)
        for mode in modes:
            print(f"• {mode}", flush=True)
            if mode in ("standalone", "connect") and "cluster" not in out:
                out["cluster"] = cluster(stack, work)
            if mode == "connect":
                out["cluster"]["connect_server_start_s"] = connect_server(stack, work)
            if mode == "warm":
                out["modes"][mode] = run_child("local", data, runs=args.runs)
            else:
                out["modes"][mode] = [run_child(mode, data)[0] for _ in range(args.runs)]

    table = Table(title=f"segment job's Spark work, {args.customers:,} customers (seconds; k search = "
                        f"{segmentation.Config().n_init} starts per k, k {segmentation.Config().k_min}-"
                        f"{segmentation.Config().k_max})")
    for col in ("mode", "run", "process", "session", "load", "prepare", "k search", "job", "k", "silhouette"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, rows in out["modes"].items():
        for i, r in enumerate(rows, 1):
            table.add_row(mode, str(i), f"{r['process_s']:.1f}" if "process_s" in r else "", f"{r['session_s']:.1f}",
                          f"{r['load_s']:.1f}", f"{r['prepare_s']:.1f}", f"{r['k_search_s']:.1f}", f"{r['job_s']:.1f}",
                          str(r["k"]), f"{r['silhouette']:.4f}")
    console = Console(width=140)
    console.print(table)
    if "cluster" in out:
        console.print("start-up (s): " + ", ".join(f"{k} {v:.1f}" for k, v in out["cluster"].items()))
    results_same = {(r["k"], r["silhouette"], r["training_cost"]) for rows in out["modes"].values() for r in rows}
    out["same_result_in_every_mode"] = len(results_same) == 1
    console.print(f"same k, silhouette and cost in every run and mode: {out['same_result_in_every_mode']}")
    print(f"figures: {results.write(lake.settings(), 'spark_modes', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the chDB-backed ClickHouse HTTP server against chDB in-process, in the same run.

Inserts 1,000,000 rows (Arrow and Native bodies) and reads them back, once through the HTTP
server (a real subprocess, `python -m clickhouse_server`) and once through chDB in this
process, and prints rows/s and the ratio HTTP / in-process. The same pre-encoded bytes go both
ways, so the ratio measures what the HTTP layer costs. clickhouse-connect rows show what a real
client sees end to end (its own encoding/decoding included).

    python benchmarks/clickhouse_http.py [--rows 1000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chdb
import requests

REPO = Path(__file__).resolve().parents[1]
DDL = ("CREATE TABLE {t} (id UInt64, customer_id UInt32, event_type String, amount Float64, ts DateTime) "
       "ENGINE = MergeTree ORDER BY id")
GEN = ("SELECT number AS id, toUInt32(number % 50000) AS customer_id, "
       "['page_view','search','add_to_cart','checkout_success'][number % 4 + 1] AS event_type, "
       "round((number % 1000) / 7, 2) AS amount, toDateTime('2024-01-01 00:00:00') + number AS ts "
       "FROM numbers({n})")
USER, PASSWORD = "bench", "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "CLICKHOUSE_DATA_DIR": data_dir, "CLICKHOUSE_PORT": str(port), "CLICKHOUSE_USER": USER,
           "CLICKHOUSE_PASSWORD": PASSWORD, "CLICKHOUSE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "clickhouse_server"], cwd=REPO, env=env)
    for _ in range(600):
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.rows
    tmp = tempfile.mkdtemp(prefix="chbench-")
    port = free_port()
    proc = start_server(os.path.join(tmp, "server"), port)
    url = f"http://127.0.0.1:{port}/"
    http = requests.Session()
    http.auth = (USER, PASSWORD)
    local = chdb.connect(os.path.join(tmp, "local"))
    results = []
    try:
        bodies = {fmt: bytes(local.query(GEN.format(n=n), fmt).bytes()) for fmt in ("Arrow", "Native")}

        def http_sql(sql: str) -> None:
            r = http.post(url, params={"query": sql})
            r.raise_for_status()

        for fmt, body in bodies.items():
            # each closure runs within its own iteration (best() below); the defaults bind fmt/body explicitly
            def local_insert(fmt=fmt, body=body):
                local.query("DROP TABLE IF EXISTS t")
                local.query(DDL.format(t="t"))
                ins = local.send_insert("INSERT INTO t", fmt)
                ins.append(body)
                assert ins.finish().rows_written == n

            def http_insert(fmt=fmt, body=body):
                http_sql("DROP TABLE IF EXISTS t")
                http_sql(DDL.format(t="t"))
                r = http.post(url, params={"query": f"INSERT INTO t FORMAT {fmt}"}, data=body)
                r.raise_for_status()

            def local_select(fmt=fmt):
                res = local.query("SELECT * FROM t", fmt)
                assert res.rows_read() == n

            def http_select(fmt=fmt):
                r = http.post(url, params={"query": f"SELECT * FROM t FORMAT {fmt}"}, stream=True)
                r.raise_for_status()
                size = sum(len(c) for c in r.iter_content(1 << 20))
                assert size > 0

            li, hi = best(local_insert, args.repeat), best(http_insert, args.repeat)
            results.append((f"insert {fmt}", n / li, n / hi, len(body)))
            ls, hs = best(local_select, args.repeat), best(http_select, args.repeat)
            results.append((f"select {fmt}", n / ls, n / hs, len(body)))

        # End-to-end with the real client (its own encoding included), for reference.
        import clickhouse_connect

        cc = clickhouse_connect.get_client(host="127.0.0.1", port=port, username=USER, password=PASSWORD)
        table = local.query(GEN.format(n=n), "ArrowTable")
        df = table.to_pandas()
        if not str(df["ts"].dtype).startswith("datetime64"):  # DateTime may arrive as epoch seconds
            df["ts"] = df["ts"].astype("datetime64[s]")
        cc_rows = []

        def cc_insert_arrow():
            cc.command("DROP TABLE IF EXISTS t")
            cc.command(DDL.format(t="t"))
            assert cc.insert_arrow("t", table).written_rows == n

        def cc_insert_df():
            cc.command("DROP TABLE IF EXISTS t")
            cc.command(DDL.format(t="t"))
            assert cc.insert_df("t", df).written_rows == n

        cc_rows.append(("clickhouse-connect insert_arrow", n / best(cc_insert_arrow, args.repeat)))
        cc_rows.append(("clickhouse-connect query_arrow", n / best(lambda: cc.query_arrow("SELECT * FROM t"), args.repeat)))
        cc_rows.append(("clickhouse-connect insert_df (Native)", n / best(cc_insert_df, args.repeat)))
        cc_rows.append(("clickhouse-connect query_df (Native)", n / best(lambda: cc.query_df("SELECT * FROM t"), args.repeat)))
        cc.close()
    finally:
        local.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nchDB {chdb.engine_version}, {n:,} rows, best of {args.repeat}, {os.cpu_count()} cores\n")
    print(f"{'operation':<24}{'body MiB':>10}{'in-process rows/s':>20}{'HTTP rows/s':>16}{'HTTP/in-process':>17}")
    for op, local_rps, http_rps, size in results:
        print(f"{op:<24}{size / 2**20:>10.1f}{local_rps:>20,.0f}{http_rps:>16,.0f}{http_rps / local_rps:>16.0%}")
    print()
    for op, rps in cc_rows:
        print(f"{op:<40}{rps:>16,.0f} rows/s")


if __name__ == "__main__":
    main()

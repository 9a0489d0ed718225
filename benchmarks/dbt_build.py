"""Benchmark: `dbt build` of the dbt project (dbt/) on N generated customers, full and incremental.

For each N, a throw-away CDC mirror `cdc_bench_<id>` (the migration's DDL) is filled inside
ClickHouse by INSERT ... SELECT from numbers(): customers (with tier updates and deletes as newer
versions / tombstones) and sessions of web events with the simulator's funnel shape (login?,
landing page_view, browsing of page_view/search/product_view, add_to_cart, checkout_start,
checkout_success, logout?) and an order per successful checkout (93% completed, 4% cancelled, 3%
refunded). It is generated in SQL rather than by the Python simulator because 100k customers are
tens of millions of events (the simulator's rows would not fit in memory); the shapes follow
simulators/catalog.py. Then, into a fresh schema `dbt_bench_<id>`:

  full         dbt build on the empty schema (every model from scratch, every test)
  no change    dbt build again, nothing new (incremental models find no affected keys)
  incremental  dbt build after new rows: 1% of customers get a converting session and an order,
               0.5% change tier, 0.1% are deleted (watermark lookback 0)

Times are wall clock of the whole dbt invocation (process start included) and dbt's own model
time (sum of the models' execution times from run_results.json). Both databases are dropped.

    python benchmarks/dbt_build.py [--customers 10000 100000] [--days 60]
    make bench b=dbt_build
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from platform_common import clients, config
from platform_common.config import REPO
from simulators import catalog
from tests.support.cdc_mirror import create_mirror

RUNNER = REPO / "dbt" / "run.py"
START = "2026-01-05 00:00:00"


def weighted(pairs) -> str:
    """A ClickHouse array literal with each value repeated by its weight (pick = arr[1 + h % len])."""
    items = []
    for value, weight in pairs:
        items += [value] * int(weight)
    return "[" + ", ".join("NULL" if v is None else f"'{v}'" for v in items) + "]"


def u(*parts: str) -> str:
    """A deterministic uniform [0, 1) from the given SQL expressions."""
    return f"(cityHash64({', '.join(parts)}) / 18446744073709551616.0)"


def generate(client, db: str, customers: int, days: int, seed: int = 1) -> None:
    countries, channels = weighted(catalog.COUNTRIES), weighted(catalog.ACQUISITION_CHANNELS)
    tiers, devices = weighted(catalog.TIERS), weighted(catalog.DEVICES)
    utm = weighted(catalog.UTM_SOURCES)
    pay = weighted([(v, w // 2) for v, w in catalog.PAYMENT_METHODS])
    window_s = days * 86400
    # signup: 75% up to two years before the window, 25% during it (as simulators/population.py)
    signup_expr = (f"toDateTime('{START}', 'UTC') + toIntervalSecond(toInt64(if({u(str(seed), 'number', chr(39) + 'old' + chr(39))} < 0.75, "
                   f"-{u(str(seed), 'number', chr(39) + 's' + chr(39))} * 730 * 86400, "
                   f"{u(str(seed), 'number', chr(39) + 's' + chr(39))} * ({window_s} - 86400))))")
    client.command(f"""
        INSERT INTO {db}.crm_customers (customer_id, email, signup_date, country, acquisition_channel,
            subscription_tier, updated_at, _version, _is_deleted, _op, _source_ts_ms)
        SELECT concat('C', leftPad(toString(n + 1), 7, '0')), concat('user.', toString(n + 1), '@example.com'),
               toDate32(signup), {countries}[1 + cityHash64({seed}, n, 'country') % length({countries})],
               {channels}[1 + cityHash64({seed}, n, 'channel') % length({channels})],
               {tiers}[1 + cityHash64({seed}, n, 'tier') % length({tiers})],
               toDateTime64(signup, 6, 'UTC'), 65537 + n, 0, 'c', toUnixTimestamp(signup) * 1000
        FROM (SELECT number AS n,
                     {signup_expr} AS signup
              FROM numbers({customers}))""")
    # sessions: per customer Poisson-like count from a log-normal engagement (median 0.3/day)
    sessions = f"""
        SELECT n, k, concat('S', toString(n), '-', toString(k)) AS sid,
               concat('C', leftPad(toString(n + 1), 7, '0')) AS cid,
               toDateTime64(active_from, 3, 'UTC') + toIntervalMillisecond(toInt64({u(str(seed), 'n', 'k', "'t'")}
                   * (toUnixTimestamp(toDateTime('{START}', 'UTC') + toIntervalSecond({window_s})) - toUnixTimestamp(active_from)) * 1000)) AS t0,
               {devices}[1 + cityHash64({seed}, n, 'dev') % length({devices})] AS device,
               {countries}[1 + cityHash64({seed}, n, 'country') % length({countries})] AS country,
               {utm}[1 + cityHash64({seed}, n, k, 'utm') % length({utm})] AS utm,
               {u(str(seed), 'n', 'k', "'login'")} < 0.3 AS login,
               toUInt32(least(20, floor(-log(1 - {u(str(seed), 'n', 'k', "'b'")}) * 5))) AS b,
               arrayMap(i -> multiIf({u(str(seed), 'n', 'k', 'i', "'x'")} < 0.16, 'search',
                                     {u(str(seed), 'n', 'k', 'i', "'x'")} < 0.38, 'page_view', 'product_view'),
                        range(b)) AS browse,
               {u(str(seed), 'n', 'k', "'cart'")} < 1 - pow(0.92, countEqual(browse, 'product_view')) AS cart,
               cart AND {u(str(seed), 'n', 'k', "'cs'")} < 0.55 AS cs,
               cs AND {u(str(seed), 'n', 'k', "'ok'")} < 0.72 AS ok,
               arrayConcat(if(login, ['login'], []), ['page_view'], browse, if(cart, ['add_to_cart'], []),
                           if(cs, ['checkout_start'], []), if(ok, ['checkout_success'], []),
                           if(login AND {u(str(seed), 'n', 'k', "'lo'")} < 0.35, ['logout'], [])) AS types
        FROM (SELECT number AS n, greatest({signup_expr}, toDateTime('{START}', 'UTC')) AS active_from,
                     toUInt32(least(6, exp(-1.2 + 0.9 * sqrt(-2 * log({u(str(seed), 'number', "'e1'")} + 1e-12))
                                       * cos(2 * pi() * {u(str(seed), 'number', "'e2'")})))
                             * (toUnixTimestamp(toDateTime('{START}', 'UTC')) + {window_s} - toUnixTimestamp(active_from)) / 86400)
                         AS n_sessions
              FROM numbers({customers}))
        ARRAY JOIN range(n_sessions) AS k"""
    client.command(f"""
        INSERT INTO {db}.raw_web_events (event_id, customer_id, session_id, event_type, page_url, product_id,
            search_query, device_type, country, utm_source, event_time, kafka_partition, kafka_offset, ingested_at,
            _version, _is_deleted, _op, _source_ts_ms)
        SELECT generateUUIDv4(), cid, sid, et,
               multiIf(et = 'login', '/login', et = 'logout', '/logout', et = 'search', '/search',
                       et = 'product_view', '/product', et IN ('add_to_cart'), '/cart', et = 'checkout_start',
                       '/checkout', et = 'checkout_success', '/checkout/success', '/'),
               if(et IN ('product_view', 'add_to_cart'), concat('P', leftPad(toString(1 + cityHash64(sid, i) % 400), 5, '0')), NULL),
               if(et = 'search', 'headphones', NULL), device, country, utm,
               t0 + toIntervalMillisecond(i * 22000), 0, 0, t0 + toIntervalMillisecond(i * 22000 + 900),
               65536 * 2 + 1, 0, 'c', 0
        FROM ({sessions}) ARRAY JOIN types AS et, arrayEnumerate(types) AS i""",
                   settings={"max_partitions_per_insert_block": 0})
    client.command(f"""
        INSERT INTO {db}.raw_purchase_events (order_id, customer_id, session_id, order_time, items, item_count,
            total_amount, currency, payment_method, order_status, shipping_country, kafka_partition, kafka_offset,
            ingested_at, _version, _is_deleted, _op, _source_ts_ms)
        SELECT generateUUIDv4(), cid, sid, t0 + toIntervalMillisecond(length(types) * 22000 + 800), '[]', 1,
               toDecimal64(round(exp(3.8 + 0.6 * sqrt(-2 * log({u('sid', "'a1'")} + 1e-12))
                                 * cos(2 * pi() * {u('sid', "'a2'")})), 2), 2),
               'USD', {pay}[1 + cityHash64(sid, 'pay') % length({pay})],
               multiIf({u('sid', "'st'")} < 0.93, 'completed', {u('sid', "'st'")} < 0.97, 'cancelled', 'refunded'),
               country, 0, 0, t0, 65536 * 2 + 1, 0, 'c', 0
        FROM ({sessions}) WHERE ok""")


def increment(client, db: str, customers: int, days: int) -> dict[str, int]:
    """New rows after the first build: sessions + orders for 1% of customers, tier changes, deletes."""
    day = f"toDateTime64('{START}', 3, 'UTC') + toIntervalDay({days - 2}) + toIntervalHour(12)"
    client.command(f"""
        INSERT INTO {db}.raw_web_events (event_id, customer_id, session_id, event_type, page_url, product_id,
            search_query, device_type, country, utm_source, event_time, kafka_partition, kafka_offset, ingested_at,
            _version, _is_deleted, _op, _source_ts_ms)
        SELECT generateUUIDv4(), concat('C', leftPad(toString(n + 1), 7, '0')), concat('N', toString(n)), et,
               '/', NULL, NULL, 'desktop', 'US', NULL, {day} + toIntervalSecond(i * 30), 0, 0, {day}, 65536 * 5 + 1,
               0, 'c', 0
        FROM (SELECT number AS n FROM numbers({customers}) WHERE number % 100 = 7)
        ARRAY JOIN ['page_view', 'product_view', 'add_to_cart', 'checkout_start', 'checkout_success'] AS et,
                   [1, 2, 3, 4, 5] AS i""")
    client.command(f"""
        INSERT INTO {db}.raw_purchase_events (order_id, customer_id, session_id, order_time, items, item_count,
            total_amount, currency, payment_method, order_status, shipping_country, kafka_partition, kafka_offset,
            ingested_at, _version, _is_deleted, _op, _source_ts_ms)
        SELECT generateUUIDv4(), concat('C', leftPad(toString(n + 1), 7, '0')), concat('N', toString(n)),
               {day} + toIntervalSecond(200), '[]', 1, toDecimal64(49.99, 2), 'USD', 'card', 'completed', 'US',
               0, 0, {day}, 65536 * 5 + 1, 0, 'c', 0
        FROM (SELECT number AS n FROM numbers({customers}) WHERE number % 100 = 7)""")
    client.command(f"""
        INSERT INTO {db}.crm_customers (customer_id, email, signup_date, country, acquisition_channel,
            subscription_tier, updated_at, _version, _is_deleted, _op, _source_ts_ms)
        SELECT customer_id, if(del, '', email), if(del, toDate32('1970-01-01'), signup_date), if(del, '', country),
               if(del, '', acquisition_channel), if(del, '', if(subscription_tier = 'premium', 'basic', 'premium')),
               now64(6), 65536 * 6 + 1, del, if(del, 'd', 'u'), 0
        FROM (SELECT *, toUInt8(cityHash64(customer_id, 'del') % 1000 = 3) AS del
              FROM {db}.crm_customers FINAL
              WHERE cityHash64(customer_id, 'upd') % 200 = 5 OR cityHash64(customer_id, 'del') % 1000 = 3)""")
    return {"customers_with_new_orders": len(range(7, customers, 100))}


def dbt_build(schema: str, cdc_db: str, workdir: Path, on_start=None) -> tuple[float, float, str, str]:
    """One `dbt build`; on_start(pid) is called once its process runs (batch_scale samples its memory)."""
    env = {**os.environ, "DBT_TARGET_SCHEMA": schema}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(RUNNER), "build", "--vars",
                             json.dumps({"cdc_database": cdc_db, "watermark_lookback_seconds": 0}),
                             "--target-path", str(workdir / "target"), "--log-path", str(workdir / "logs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    if on_start:
        on_start(proc.pid)
    stdout, stderr = proc.communicate(timeout=7200)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{stdout[-4000:]}\n{stderr[-2000:]}")
    results = json.loads((workdir / "target" / "run_results.json").read_text())["results"]
    models = sum(r["execution_time"] for r in results if r["unique_id"].startswith("model."))
    summary = next((line.split("Done. ")[1] for line in stdout.splitlines() if "Done. " in line), "?")
    # models and tests: a test of stg_web_events holds up every model after it
    slowest = sorted((r for r in results if r["unique_id"].startswith(("model.", "test."))),
                     key=lambda r: -r["execution_time"])
    top = ", ".join(f"{r['unique_id'].split('.')[2]} {r['execution_time']:.1f}s" for r in slowest[:6])
    return wall, models, summary, top


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--days", type=int, default=60)
    args = ap.parse_args()
    settings = config.load()
    client = clients.clickhouse(settings, send_receive_timeout=3600)
    console = Console(width=140)
    table = Table(title=f"dbt build (dbt/), {args.days} days of history, this machine")
    for col in ("customers", "web events", "orders", "generate", "full build", "  models", "no change",
                "  models", "incremental", "  models", "incr. / full", "tests"):
        table.add_column(col, justify="right")
    for n in args.customers:
        tag = uuid.uuid4().hex[:8]
        cdc_db, schema = f"cdc_bench_{tag}", f"dbt_bench_{tag}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                create_mirror(client, cdc_db)
                console.print(f"{n:,} customers: generating ...")
                t = time.perf_counter()
                generate(client, cdc_db, n, args.days)
                gen_s = time.perf_counter() - t
                events = client.query(f"SELECT count() FROM {cdc_db}.raw_web_events").result_rows[0][0]
                orders = client.query(f"SELECT count() FROM {cdc_db}.raw_purchase_events").result_rows[0][0]
                console.print(f"  {events:,} events, {orders:,} orders in {gen_s:.1f}s; full build ...")
                full = dbt_build(schema, cdc_db, workdir)
                console.print(f"  full {full[0]:.1f}s ({full[2]}); slowest nodes: {full[3]}")
                same = dbt_build(schema, cdc_db, workdir)
                console.print(f"  no change {same[0]:.1f}s; slowest nodes: {same[3]}")
                increment(client, cdc_db, n, args.days)
                incr = dbt_build(schema, cdc_db, workdir)
                console.print(f"  incremental {incr[0]:.1f}s ({incr[2]}); slowest nodes: {incr[3]}")
                table.add_row(f"{n:,}", f"{events:,}", f"{orders:,}", f"{gen_s:.1f}s", f"{full[0]:.1f}s",
                              f"{full[1]:.1f}s", f"{same[0]:.1f}s", f"{same[1]:.1f}s", f"{incr[0]:.1f}s",
                              f"{incr[1]:.1f}s", f"{incr[0] / full[0]:.2f}", full[2].split(" SKIP")[0])
        finally:
            for db in (schema, cdc_db):
                client.command(f"DROP DATABASE IF EXISTS {db}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

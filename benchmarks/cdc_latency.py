"""CDC latency: PostgreSQL commit -> Kafka (Debezium) -> ClickHouse mirror row (CDC sink).

Writes raw.web_events at a target rate (default 10,000 rows/s for 30 s) in small committed
batches (COPY), then reads back, per row:
  * t_commit: the source commit time Debezium reports (source.ts_ms, stored as _source_ts_ms),
  * t_kafka:  when the change reached Kafka (the record's timestamp, read by a consumer here),
  * t_mirror: when ClickHouse received the row (_synced_at, the first arrival per key).
All three come from this machine's clock. Prints p50/p95/p99/max per stage and end to end, and
the sustained rates. The rows are deleted again afterwards (through CDC too) unless --keep.

    .venv/bin/python benchmarks/cdc_latency.py [--rate 10000] [--seconds 30] [--batch 500]

Needs the running stack (make up) with the cdc-raw connector and the cdc-sink service.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
import time
import uuid

import orjson
import psycopg
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from platform_common import clients, config
from stack import kafka

COLUMNS = ("event_id", "customer_id", "session_id", "event_type", "page_url", "product_id", "search_query",
           "device_type", "country", "utm_source", "event_time", "kafka_partition", "kafka_offset")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def write(settings, customer_id: str, rate: int, seconds: float, batch: int) -> tuple[int, float]:
    """COPY batches at the target rate; returns (rows, elapsed seconds)."""
    interval = batch / rate
    rows = 0
    started = time.monotonic()
    with psycopg.connect(settings.postgres_dsn(settings.postgres_stream_user,
                                               settings.postgres_stream_password)) as conn:
        n = 0
        while time.monotonic() - started < seconds:
            due = started + n * interval
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            now = dt.datetime.now(dt.UTC)
            with conn.cursor() as cur, cur.copy(f"COPY raw.web_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for i in range(batch):
                    copy.write_row((uuid.uuid4(), customer_id, f"bench-{n}", "page_view", "/bench", None, None,
                                    "desktop", "DE", None, now, 0, n * batch + i))
            conn.commit()
            rows += batch
            n += 1
    return rows, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="rows per second written (default 10000)")
    parser.add_argument("--seconds", type=float, default=30, help="how long to write (default 30)")
    parser.add_argument("--batch", type=int, default=500, help="rows per committed transaction (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the rows (default: delete them afterwards)")
    args = parser.parse_args()
    settings = config.load()
    console = Console()
    ch = clients.clickhouse(settings)
    customer_id = f"bench-cdc-{uuid.uuid4().hex[:10]}"
    topic = f"{settings.cdc_topic_prefix}.raw.web_events"

    # Kafka arrival times, read by our own consumer from the current end of the topic
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"bench-{customer_id}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    parts = kafka.admin(settings).list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                     for p in parts])
    kafka_ts: dict[str, float] = {}
    marker = customer_id.encode()
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            for msg in consumer.consume(num_messages=5000, timeout=0.2):
                if msg.error() or msg.value() is None or marker not in msg.value():
                    continue
                event_id = orjson.loads(msg.key())["payload"]["event_id"]
                kafka_ts.setdefault(event_id, msg.timestamp()[1] / 1000)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    console.print(f"writing raw.web_events at {args.rate:,} rows/s for {args.seconds:.0f} s "
                  f"({args.batch} rows per transaction), customer_id={customer_id}")
    rows, elapsed = write(settings, customer_id, args.rate, args.seconds, args.batch)
    write_done = time.time()
    console.print(f"wrote {rows:,} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s); waiting for the mirror ...")
    # The mirror is ordered by event_id, so a count of this run's customer reads all of it (~1 s at 8.7M
    # rows); polled every 0.5 s it took a core from the sink being measured. The latencies come from
    # each row's _synced_at, not from this loop: it waits for Debezium first (the consumer here counts
    # the changes in Kafka, at no cost to the stack), then polls the mirror every 2 s.
    deadline = time.monotonic() + 180
    mirrored = 0
    while time.monotonic() < deadline:
        if len(kafka_ts) < rows:
            time.sleep(0.5)
            continue
        mirrored = ch.query("SELECT uniqExact(event_id) FROM cdc.raw_web_events WHERE customer_id = {c:String}",
                            parameters={"c": customer_id}).result_rows[0][0]
        if mirrored >= rows:
            break
        time.sleep(2)
    caught_up = time.time()
    done.set()
    reader.join()
    consumer.close()
    result = ch.query("SELECT toString(event_id), any(_source_ts_ms), toFloat64(min(_synced_at)) "
                      "FROM cdc.raw_web_events WHERE customer_id = {c:String} GROUP BY event_id",
                      parameters={"c": customer_id}).result_rows
    to_kafka, to_mirror, end_to_end = [], [], []
    for event_id, commit_ms, synced in result:
        commit = commit_ms / 1000
        end_to_end.append(synced - commit)
        if event_id in kafka_ts:
            to_kafka.append(kafka_ts[event_id] - commit)
            to_mirror.append(synced - kafka_ts[event_id])

    table = Table(title=f"CDC latency, {rows:,} rows at {rows / elapsed:,.0f} rows/s (seconds)")
    for column in ("stage", "rows", "p50", "p95", "p99", "max"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for name, values in (("commit -> Kafka (Debezium)", to_kafka), ("Kafka -> ClickHouse (CDC sink)", to_mirror),
                         ("commit -> ClickHouse (end to end)", end_to_end)):
        table.add_row(name, f"{len(values):,}", *(f"{percentile(values, q):.3f}" for q in (50, 95, 99, 100)))
    console.print(table)
    p99 = percentile(end_to_end, 99)
    console.print(f"mirrored {mirrored:,}/{rows:,} rows; caught up {caught_up - write_done:.1f} s after the last "
                  f"commit; goal p99 < 5 s: {'met' if p99 < 5 else 'NOT met'} (p99 {p99:.2f} s); "
                  f"p99 share Debezium {percentile(to_kafka, 99):.2f} s vs sink {percentile(to_mirror, 99):.2f} s")
    if not args.keep:
        with psycopg.connect(settings.postgres_dsn(settings.postgres_user, settings.postgres_password),
                             autocommit=True) as conn:
            conn.execute("DELETE FROM raw.web_events WHERE customer_id = %s", (customer_id,))
        # wait for the deletes to pass through CDC too, so a following run does not queue behind them
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and ch.query(
                "SELECT count() FROM cdc.raw_web_events FINAL WHERE customer_id = {c:String}",
                parameters={"c": customer_id}).result_rows[0][0]:
            time.sleep(1)
        console.print("benchmark rows deleted from raw.web_events and, through CDC, from the mirror")
    return 0 if mirrored >= rows else 1


if __name__ == "__main__":
    sys.exit(main())

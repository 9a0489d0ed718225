"""Benchmark: event-simulator throughput on this machine, against the raw producer ceiling.

Three measurements in the same run, on fresh topics (6 + 3 partitions, like web_events and
purchase_events), deleted afterwards:

1. raw produce   - confluent-kafka producing pre-built messages (the very records the simulator
                   generates) with the simulator's producer settings: the ceiling.
2. generate only - the simulator (backfill, as fast as possible, in-memory ledger) into a null sink.
3. end to end    - the simulator into Kafka, including the final flush (every message acknowledged).

    python benchmarks/simulator_throughput.py [--messages 1000000] [--customers 20000]
    make bench b=simulator_throughput
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid

from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from platform_common import config
from simulators import run
from simulators.sinks import PRODUCER_CONFIG
from stack import kafka

TARGET = 20_000  # events/s the simulator must sustain end to end


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="valid records per measurement")
    ap.add_argument("--customers", type=int, default=20_000)
    args = ap.parse_args()
    settings = config.load()
    bootstrap = settings.kafka_bootstrap_servers
    suffix = uuid.uuid4().hex[:8]
    web, purchases = f"bench_web_events_{suffix}", f"bench_purchase_events_{suffix}"
    kafka.ensure_topics(settings, [kafka.Topic(web, 6, 3_600_000, "delete"),
                                   kafka.Topic(purchases, 3, 3_600_000, "delete")])
    common = dict(start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), days=365, customers=args.customers,
                  seed=1, count=args.messages, quiet=True, ledger="none", web_topic=web,
                  purchase_topic=purchases, settings=settings)   # in-memory ledger kept, no files written
    console = Console(width=130)
    try:
        # the messages themselves, for the raw ceiling (generated in memory first)
        console.print(f"generating {args.messages:,} records in memory for the raw-producer ceiling ...")
        prebuilt = run(sink="memory", **common).sink.messages
        n = len(prebuilt)
        nbytes = sum(len(v) for _, _, v in prebuilt)

        console.print("raw produce ...")
        producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
        produce, poll = producer.produce, producer.poll
        t0 = time.perf_counter()
        for i, (topic, key, value) in enumerate(prebuilt):
            try:
                produce(topic, value, key)
            except BufferError:
                poll(0.05)
                produce(topic, value, key)
            if not i & 0x3FFF:
                poll(0)
        left = producer.flush(120)
        raw_s = time.perf_counter() - t0
        assert left == 0, f"{left} messages not delivered"
        del prebuilt

        console.print("generate only ...")
        t0 = time.perf_counter()
        gen = run(sink="null", **common)
        gen_s = time.perf_counter() - t0

        console.print("end to end ...")
        t0 = time.perf_counter()
        e2e = run(**common)
        e2e_s = time.perf_counter() - t0
        assert e2e.messages == gen.messages == n
    finally:
        client = kafka.admin(settings)
        for future in client.delete_topics([web, purchases]).values():
            future.result()

    raw_rate, gen_rate, e2e_rate = n / raw_s, n / gen_s, n / e2e_s
    table = Table(title=f"simulator throughput: {n:,} records ({nbytes / n:.0f} B avg, "
                        f"{args.customers:,} customers), Kafka {bootstrap}")
    for col in ("measurement", "seconds", "records/s", "MB/s", "vs raw produce", f"vs target {TARGET:,}/s"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    for name, secs, rate in (("raw produce (pre-built messages)", raw_s, raw_rate),
                             ("simulator, generate only", gen_s, gen_rate),
                             ("simulator, end to end into Kafka", e2e_s, e2e_rate)):
        table.add_row(name, f"{secs:.2f}", f"{rate:,.0f}", f"{rate * nbytes / n / 1e6:.1f}",
                      f"{rate / raw_rate:.2f}x", f"{rate / TARGET:.2f}x")
    console.print(table)
    console.print(f"end to end: {e2e_rate:,.0f} records/s "
                  f"({'meets' if e2e_rate >= TARGET else 'BELOW'} the {TARGET:,}/s target)")
    return 0 if e2e_rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

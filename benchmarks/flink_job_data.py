"""Input files for benchmarks/flink_job_throughput.py: simulator records as the Flink job's test
sources read them (JSON lines of payload, src_topic, src_partition, src_offset).

Runs with the main virtualenv (the simulators need orjson):
    .venv/bin/python benchmarks/flink_job_data.py OUT_DIR --web 500000 [--rate 1000]

Records come from the event simulator (backfill mode, in event-time order, with duplicates,
malformed and late records at the given rates). `--rate` re-spaces their event times to that many
records per second of event time (the live simulator's default is 1000/s), keeping their order, so
windows hold as many events as they would in a live run at that rate.
"""
from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

from simulators.runner import run

PARTITIONS = {"web_events": 6, "purchase_events": 3}   # stack/topics.conf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--web", type=int, default=500_000, help="web events (valid ones) to generate")
    ap.add_argument("--rate", type=float, default=1000.0, help="records per second of event time; 0 = as simulated")
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--duplicate-rate", type=float, default=0.01)
    ap.add_argument("--malformed-rate", type=float, default=0.005)
    ap.add_argument("--late-rate", type=float, default=0.002)
    args = ap.parse_args()
    common = dict(sink="memory", ledger="none", quiet=True, customers=args.customers, days=30.0)
    factor = 1.0
    if args.rate:
        # a pilot run measures the simulated density (records per second of event time)
        pilot = run(count=20_000, **common).sink.messages
        times = [json.loads(v).get("event_time") or json.loads(v).get("order_time") for _t, _k, v in pilot]
        density = len(times) / ((max(times) - min(times)) / 1000)
        factor = density / args.rate
    # late records are held back late_delay_s of simulated time: after re-spacing, 100 s of event time
    ledger = run(count=int(args.web * 1.05), duplicate_rate=args.duplicate_rate, malformed_rate=args.malformed_rate,
                 late_rate=args.late_rate, late_delay_s=100.0 / factor, **common)
    messages = ledger.sink.messages
    args.out.mkdir(parents=True, exist_ok=True)
    offsets = {t: [0] * n for t, n in PARTITIONS.items()}
    first_ms = None
    counts = {"web_events": 0, "purchase_events": 0}
    with (args.out / "web.jsonl").open("w") as web, (args.out / "orders.jsonl").open("w") as orders:
        for topic, key, value in messages:
            if topic == "web_events" and counts["web_events"] >= args.web:
                continue
            payload = value.decode()
            if factor != 1.0:
                # re-space event times around the first one (order and relative lateness kept)
                try:
                    rec = json.loads(payload)
                except ValueError:
                    rec = None
                field = "event_time" if topic == "web_events" else "order_time"
                if isinstance(rec, dict) and isinstance(rec.get(field), int):
                    first_ms = rec[field] if first_ms is None else first_ms
                    rec[field] = first_ms + int((rec[field] - first_ms) * factor)
                    payload = json.dumps(rec, separators=(",", ":"))
            partition = zlib.crc32(key) % PARTITIONS[topic]
            line = json.dumps({"payload": payload, "src_topic": topic, "src_partition": partition,
                               "src_offset": offsets[topic][partition]})
            offsets[topic][partition] += 1
            counts[topic] += 1
            (web if topic == "web_events" else orders).write(line + "\n")
    print(json.dumps({"records": counts, "generated": len(messages), "time_factor": factor}))


if __name__ == "__main__":
    main()

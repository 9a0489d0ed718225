"""Command line: `python -m simulators customers|events|all|import [options]` (the make targets call it)."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from platform_common.contracts import PURCHASE_EVENTS_TOPIC, WEB_EVENTS_TOPIC
from platform_common.errors import StackError

# The demo's data (`python -m simulators demo`, `make generate_demo`; tests/e2e/test_batch_pipeline.py):
# ~65k events, which the Flink job (~400-550 events/s) and CDC take about 2.5 minutes to drain here,
# enough history (60 days) for the churners to have gone quiet by the end of it.
DEMO_CUSTOMERS, DEMO_DAYS, DEMO_SEED = 400, 60, 5101


def demo_id_prefix(today: dt.date | None = None) -> str:
    """The demo's customer ids carry the day (D261122-0000001): a re-run the same day sends the very same
    records (deduplicated, nothing changes), and a run on a later day, whose 60-day window has moved,
    is a population of its own instead of colliding with the earlier one or with `generate_all`'s C ids."""
    return f"D{(today or dt.datetime.now(dt.UTC).date()):%y%m%d}-"


def _date(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or date-time (e.g. 2025-01-01)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _rate(value: str) -> float:
    f = float(value)
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a fraction within 0..1")
    return f


def _streams(value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [n for n in names if n not in ("web", "purchases")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"streams must be web, purchases or web,purchases (got {value!r})")
    return names


def _population_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("population and clock")
    g.add_argument("--customers", type=int, default=5000, help="number of customers (default 5000)")
    g.add_argument("--seed", type=int, default=42, help="random seed: same seed, same data (default 42)")
    g.add_argument("--days", type=float, default=120, help="history length in days (default 120)")
    g.add_argument("--start", type=_date, default=None,
                   help="first simulated instant, UTC (default: today's midnight minus --days)")
    g.add_argument("--id-prefix", default="C", help="customer_id prefix (default C: C0000001 ...)")
    g.add_argument("--mode", choices=("backfill", "live"), default="backfill",
                   help="backfill: simulated clock over the history; live: current time (default backfill)")
    g.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    g.add_argument("--count", type=int, default=None,
                   help="stop after this many records (events: valid records; customers live: changes)")
    g.add_argument("--ledger-dir", type=Path, default=None,
                   help="where to write the ledger (default DATA_DIR/simulator/ledger/<run-id>)")
    g.add_argument("--run-id", default=None, help="ledger run id (default: time-kind-random)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def _event_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("events")
    g.add_argument("--rate", type=float, default=None,
                   help="messages per second; 0 = as fast as possible (default: 0 backfill; live 1000, or 50 "
                        "with --streams purchases)")
    g.add_argument("--streams", type=_streams, default=("web", "purchases"),
                   help="topics to send: web, purchases or web,purchases (default both)")
    g.add_argument("--web-topic", default=WEB_EVENTS_TOPIC)
    g.add_argument("--purchase-topic", default=PURCHASE_EVENTS_TOPIC)
    g.add_argument("--late-rate", type=_rate, default=0.0, help="fraction of records sent late (default 0)")
    g.add_argument("--late-delay", type=float, default=300.0,
                   help="how far behind the stream late records arrive, seconds (default 300)")
    g.add_argument("--duplicate-rate", type=_rate, default=0.0,
                   help="fraction of records re-sent verbatim (default 0)")
    g.add_argument("--malformed-rate", type=_rate, default=0.0,
                   help="malformed records injected per valid record (default 0)")
    g.add_argument("--ledger", choices=("none", "summary", "full"), default="summary",
                   help="summary: totals, windows, customers; full: also sent.parquet, one row per message")


def _event_config(args, streams=None):
    from simulators.events import EventConfig
    return EventConfig(
        mode=args.mode, days=args.days, start=args.start, customers=args.customers, seed=args.seed, rate=args.rate,
        duration=args.duration, count=args.count, streams=streams or args.streams, web_topic=args.web_topic,
        purchase_topic=args.purchase_topic, late_rate=args.late_rate, late_delay_s=args.late_delay,
        duplicate_rate=args.duplicate_rate, malformed_rate=args.malformed_rate, id_prefix=args.id_prefix,
        ledger=args.ledger, ledger_dir=args.ledger_dir, run_id=args.run_id, quiet=args.quiet)


def _print_events(ledger) -> None:
    s = ledger.summary()
    w, p = s["topics"]["web_events"], s["topics"]["purchase_events"]
    print(f"sent {s['messages']:,} messages in {s['elapsed_s']:.1f}s "
          f"({s['messages'] / max(s['elapsed_s'], 1e-9):,.0f}/s): "
          f"{w['topic']} {w['messages']:,} (valid {w['valid']:,}, dup {w['duplicates']:,}, "
          f"malformed {w['malformed']:,}, late {w['late']:,}); "
          f"{p['topic']} {p['messages']:,} (valid {p['valid']:,}, dup {p['duplicates']:,}, "
          f"malformed {p['malformed']:,}, late {p['late']:,}); revenue {s['purchase_events']['revenue']}")
    if ledger.directory:
        print(f"ledger: {ledger.directory}")


def cmd_events(args) -> int:
    from simulators.runner import run
    _print_events(run(_event_config(args)))
    return 0


def cmd_customers(args) -> int:
    from simulators.customers import CustomerConfig, run_customers
    ledger = run_customers(CustomerConfig(
        mode=args.mode, customers=args.customers, seed=args.seed, days=args.days, start=args.start,
        id_prefix=args.id_prefix, rate=args.rate, duration=args.duration, count=args.count,
        ledger_dir=args.ledger_dir, run_id=args.run_id, quiet=args.quiet))
    s = ledger.summary()
    print(f"customers: {s['inserts']:,} inserts, {s['updates_total']:,} updates, {s['deletes']:,} deletes in "
          f"{s['transactions']:,} transactions ({s['rows_changed']:,} rows changed); "
          f"{s['final_rows']:,} rows for this population in crm.customers")
    if ledger.directory:
        print(f"ledger: {ledger.directory}")
    return 0


def cmd_all(args) -> int:
    from simulators.customers import CustomerConfig, run_customers
    from simulators.runner import run
    ledger = run_customers(CustomerConfig(
        mode="backfill", customers=args.customers, seed=args.seed, days=args.days, start=args.start,
        id_prefix=args.id_prefix, quiet=args.quiet,
        ledger_dir=args.ledger_dir / "customers" if args.ledger_dir else None))
    s = ledger.summary()
    print(f"customers: {s['inserts']:,} inserts, {s['updates_total']:,} updates, {s['deletes']:,} deletes; "
          f"ledger: {ledger.directory}")
    cfg = _event_config(args, streams=("web", "purchases"))
    if args.ledger_dir:
        cfg.ledger_dir = args.ledger_dir / "events"
    _print_events(run(cfg))
    return 0


def cmd_import(args) -> int:
    from simulators.importing import ImportConfig, run_import
    ledger = run_import(ImportConfig(
        mapping=args.mapping, web_topic=args.web_topic, purchase_topic=args.purchase_topic, dry_run=args.dry_run,
        ledger_dir=args.ledger_dir, report=args.report, run_id=args.run_id, quiet=args.quiet))
    s = ledger.summary()
    read = ", ".join(f"{k} {v:,}" for k, v in s["rows_read"].items())
    print(f"{'checked (dry run, nothing sent)' if args.dry_run else 'imported'}: rows read {read}; "
          f"{s['customers']['final_rows']:,} customers, {ledger.web.valid:,} web events, "
          f"{ledger.purchases.valid:,} orders (revenue {s['purchase_events']['revenue']}); "
          f"{s['rejected']:,} rows rejected")
    for reason, n in s["rejected_by_reason"].items():
        print(f"  {n:>8,} × {reason}")
    if s["rejected"]:
        print(f"rejected rows: {ledger.report}")
    if ledger.not_in_crm:
        print(f"note: {len(ledger.not_in_crm):,} customers with events or orders are not in crm.customers "
              f"(e.g. {ledger.not_in_crm[0]}): their events count in the event marts, but customer_features and the "
              f"segments only hold customers of crm.customers; import them in a customers section")
    print(f"ledger: {ledger.directory}")
    return 0


def cmd_wait(args) -> int:
    from platform_common import config
    from simulators import pipeline
    settings = config.load()
    runs = args.run_id or pipeline.default_runs(settings)
    print(f"waiting for runs {', '.join(runs)} (stream: Kafka → Flink → PostgreSQL raw.*; cdc: → ClickHouse cdc.*)")
    out = pipeline.wait(settings, runs, timeout=args.timeout, stall=args.stall, progress=None if args.quiet else print)
    print(f"caught up in {out['seconds']:.1f}s (stream {out['stream_s']}s, cdc {out['cdc_s']}s): "
          + ", ".join(f"{c['table']} {c['got']:,}" for c in out["checks"]))
    return 0


def cmd_summary(args) -> int:
    from platform_common import config
    from simulators import summary
    print(summary.render(summary.collect(config.load(), args.run_id)))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("customers", help="customer master data into PostgreSQL crm.customers, changed over time")
    _population_options(c)
    c.add_argument("--rate", type=float, default=2.0, help="live mode: changes per second (default 2)")
    c.set_defaults(func=cmd_customers)
    e = sub.add_parser("events", help="web and purchase events into Kafka")
    _population_options(e)
    _event_options(e)
    e.set_defaults(func=cmd_events)
    a = sub.add_parser("all", help="customers (backfill), then web and purchase events")
    _population_options(a)
    _event_options(a)
    a.set_defaults(func=cmd_all)
    d = sub.add_parser("demo", help=f"`all` with the demo's preset: {DEMO_CUSTOMERS} customers, {DEMO_DAYS} days, "
                                    f"seed {DEMO_SEED} (options as for all)")
    _population_options(d)
    _event_options(d)
    d.set_defaults(func=cmd_all, customers=DEMO_CUSTOMERS, days=DEMO_DAYS, seed=DEMO_SEED,
                   id_prefix=demo_id_prefix())
    i = sub.add_parser("import", help="your own CSV/Parquet customers, orders and web events, through a mapping file "
                                      "(simulators/importing/README.md)")
    i.add_argument("mapping", type=Path, help="the mapping file (YAML): files, columns, formats")
    i.add_argument("--dry-run", action="store_true", help="read, check and report; send and write nothing")
    i.add_argument("--report", type=Path, default=None,
                   help="where to write the rejected rows (default <ledger dir>/rejected.csv)")
    i.add_argument("--web-topic", default=WEB_EVENTS_TOPIC)
    i.add_argument("--purchase-topic", default=PURCHASE_EVENTS_TOPIC)
    i.add_argument("--ledger-dir", type=Path, default=None,
                   help="where to write the ledger (default DATA_DIR/simulator/ledger/<run-id>)")
    i.add_argument("--run-id", default=None, help="ledger run id (default: time-import-random)")
    i.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    i.set_defaults(func=cmd_import)
    w = sub.add_parser("wait-for-pipeline",
                       help="wait until PostgreSQL raw.*/crm and the ClickHouse mirror hold exactly what runs sent")
    w.add_argument("--run-id", action="append", default=None,
                   help="ledger run id (repeatable; default: the newest events run and its population's customers run)")
    w.add_argument("--timeout", type=float, default=900, help="give up after this many seconds (default 900)")
    w.add_argument("--stall", type=float, default=120, help="give up after this long without progress (default 120)")
    w.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    w.set_defaults(func=cmd_wait)
    m = sub.add_parser("summary", help="what a run sent and the latest customer segments (ClickHouse ml.*_latest)")
    m.add_argument("--run-id", default=None, help="events ledger run id (default: the newest)")
    m.set_defaults(func=cmd_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (StackError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

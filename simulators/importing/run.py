"""An import end to end: mapping -> rows -> contract records -> crm.customers and Kafka, with a ledger
(what wait-for-pipeline reconciles) and a report of the rejected rows.

Customers are written first (as `simulators all` does), through the customer simulator's writer
(upserts: a row only replaces an older `updated_at`). Then events and orders go to Kafka through the
simulators' sink, merged in event-time order like a backfill, each counted by the simulators' event
ledger as it is sent. Rows are held in memory between reading and sending (sorting needs all of them):
a few million rows fit in a few GB.
"""
from __future__ import annotations

import datetime as dt
import heapq
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from platform_common.contracts import PURCHASE_EVENTS_TOPIC, WEB_EVENTS_TOPIC
from simulators.importing import files, records
from simulators.importing.mapping import Section, load
from simulators.importing.report import Rejections
from simulators.importing.values import Invalid
from simulators.ledger import ImportLedger
from simulators.progress import ProgressView
from simulators.sinks import SimulatorError, open_sink

CUSTOMER_BATCH = 5000     # customers per transaction


@dataclass
class ImportConfig:
    mapping: Path
    web_topic: str = WEB_EVENTS_TOPIC
    purchase_topic: str = PURCHASE_EVENTS_TOPIC
    dry_run: bool = False                 # read, check and report; send and write nothing
    ledger_dir: Path | None = None        # default DATA_DIR/simulator/ledger/<run-id>
    report: Path | None = None            # default <ledger dir>/rejected.csv
    run_id: str | None = None
    quiet: bool = False

    def as_dict(self) -> dict:
        return {"mapping": str(self.mapping), "web_topic": self.web_topic, "purchase_topic": self.purchase_topic,
                "dry_run": self.dry_run}


def run_import(cfg: ImportConfig, *, sink=None, customer_writer=None, settings=None) -> ImportLedger:
    """Import the mapping's files; return the ledger (its `.report` is the rejected-rows file).

    sink: as for simulators.run (None = Kafka from .env; "memory", "null" or an object).
    customer_writer: None = crm.customers as the simulator role, or an object with apply(upserts,
    deletes) -> rows changed, and close(). A dry run uses the null sink and writes no customers.
    """
    from simulators.runner import new_run_id, simulator_dir

    mapping = load(cfg.mapping)
    for section in mapping.sections.values():
        files.check_columns(section)
    run_id = cfg.run_id or new_run_id("import")
    if settings is None and (not cfg.dry_run and (sink is None or customer_writer is None)
                             or cfg.ledger_dir is None):
        from platform_common import config as stack_config
        settings = stack_config.load()
    # a dry run's ledger is kept apart: wait-for-pipeline must not wait for what was never sent
    directory = cfg.ledger_dir or simulator_dir(settings) / ("dry-runs" if cfg.dry_run else "ledger") / run_id
    ledger = ImportLedger(run_id, cfg.as_dict(), cfg.web_topic, cfg.purchase_topic)
    rejected = Rejections()
    t0 = time.perf_counter()

    customers = _customers(mapping.get("customers"), rejected, ledger, cfg.quiet)
    web = _web_events(mapping.get("web_events"), rejected, ledger, cfg.quiet)
    orders = _orders(mapping.get("orders"), mapping.get("order_items"), rejected, ledger, cfg.quiet)

    if cfg.dry_run:
        sink, customer_writer = "null", _NoWriter()
    if customers:
        if customer_writer is None:
            from simulators.customers import CustomerWriter
            customer_writer = CustomerWriter(settings.postgres_dsn(settings.postgres_simulator_user,
                                                                   settings.postgres_simulator_password))
        try:
            _write_customers(customers, customer_writer, ledger, cfg.quiet)
        finally:
            customer_writer.close()
    if web or orders:
        topics = ([cfg.web_topic] if web else []) + ([cfg.purchase_topic] if orders else [])
        ledger.sink = open_sink(sink, settings, topics)
        _send(web, orders, ledger, cfg, cfg.quiet)

    ledger.not_in_crm = _not_in_crm(set(ledger.customers) - ledger.customer_ids,
                                    None if cfg.dry_run else settings)
    ledger.rejected = rejected.by_reason()
    ledger.elapsed_s = time.perf_counter() - t0
    ledger.finished_at = dt.datetime.now(dt.UTC)
    ledger.report = rejected.write(cfg.report or directory / "rejected.csv")
    ledger.write(directory)
    ledger.directory = directory
    return ledger


def _not_in_crm(ids: set[str], settings) -> list[str]:
    """Customers with events or orders but no crm.customers row. The marts built per customer
    (customer_features, RFM, hence the segments) start from crm.customers, so these customers' events
    count in the event marts (funnel, daily KPIs) but they are never segmented. Without settings (a dry
    run, tests) only this import's customers are known."""
    if ids and settings is not None:
        import psycopg
        dsn = settings.postgres_dsn(settings.postgres_simulator_user, settings.postgres_simulator_password)
        try:
            with psycopg.connect(dsn) as pg:
                known = {r[0] for r in pg.execute("SELECT customer_id FROM crm.customers WHERE customer_id = ANY(%s)",
                                                  (sorted(ids),))}
        except psycopg.OperationalError as exc:
            raise SimulatorError(f"PostgreSQL is not reachable as the simulator role ({str(exc).strip()[:200]}); "
                                 f"start it with `make up s=postgres`") from None
        ids = ids - known
    return sorted(ids)


class _NoWriter:
    def apply(self, upserts, deletes) -> int:
        return 0

    def close(self) -> None:
        pass


def _rows(section: Section, what: str, quiet: bool):
    """The section's rows, with a progress bar over them."""
    view = ProgressView(f"read {what}", None if quiet else float(files.count(section)), quiet)
    n = 0
    try:
        for n, row in files.rows(section):
            if not n % 5000:
                view.update(n, f"{n:,} rows  {section.file.name}")
            yield n, row
    finally:
        view.close(n, f"{n:,} rows  {section.file.name}")


def _customers(section: Section | None, rejected: Rejections, ledger: ImportLedger, quiet: bool) -> dict:
    """customer_id -> row; of several rows of one customer the newest updated_at wins (later row on a tie),
    as it would in crm.customers."""
    if section is None:
        return {}
    now_ms = int(time.time() * 1000)
    out: dict[str, dict] = {}
    n = 0
    for n, row in _rows(section, "customers", quiet):
        try:
            c = records.customer(section, row, now_ms)
        except Invalid as exc:
            rejected.add("customers", section.file.name, n, str(exc))
            continue
        old = out.get(c["customer_id"])
        if old is None or old["updated_at"] <= c["updated_at"]:
            out[c["customer_id"]] = c
    ledger.rows_read["customers"] = n
    return out


def _web_events(section: Section | None, rejected: Rejections, ledger: ImportLedger, quiet: bool) -> list[dict]:
    if section is None:
        return []
    seen: dict[str, int] = {}
    out = []
    n = 0
    for n, row in _rows(section, "web events", quiet):
        try:
            e = records.web_event(section, row)
            first = seen.setdefault(e["event_id"], n)
            if first != n:
                raise Invalid(f"event_id: the same event as row {first}")
        except Invalid as exc:
            rejected.add("web_events", section.file.name, n, str(exc))
            continue
        out.append(e)
    ledger.rows_read["web_events"] = n
    return out


def _orders(section: Section | None, items_section: Section | None, rejected: Rejections, ledger: ImportLedger,
            quiet: bool) -> list[tuple[dict, int, int]]:
    """(record, total cents, item count) per valid order. An order is one row, or one row per line item
    (grouped by order_id), plus its order_items rows; one bad row rejects the whole order, and every
    other row of it is reported too (naming the bad row), so no order is sent incomplete."""
    if section is None:
        return []
    per_item = section.has("unit_price")
    orders: dict[str, tuple[dict, list[dict], list[tuple]]] = {}   # id -> fields, items, (section, file, row)
    bad: dict[str, str] = {}                                                 # id -> first reason
    n = 0
    for n, row in _rows(section, "orders", quiet):
        where = ("orders", section.file.name, n)
        try:
            fields, item = records.order_row(section, row)
        except Invalid as exc:
            rejected.add(*where, str(exc))
            oid = _order_id(section, row)
            if oid is not None:
                bad.setdefault(oid, f"row {n} of the same order is invalid")
            continue
        oid = fields["order_id"]
        if oid not in orders:
            orders[oid] = (fields, [item] if item else [], [where])
            continue
        first, items, rows = orders[oid]
        if not per_item and fields == first:     # a repeated row: the order is sent once
            rejected.add(*where, f"order_id: the same order as row {rows[0][2]}")
            continue
        rows.append(where)
        keys = records.ORDER_KEYS if per_item else fields
        if (diff := next((k for k in keys if first.get(k) != fields.get(k)), None)):
            bad.setdefault(oid, f"{diff}: differs between the rows of the order (rows {rows[0][2]}, {n})")
        else:
            items.append(item)
    ledger.rows_read["orders"] = n
    if items_section is not None:
        m = 0
        for m, row in _rows(items_section, "order items", quiet):
            try:
                oid, item = records.item_row(items_section, row)
                if oid not in orders and oid not in bad:
                    raise Invalid("order_id: no order with this id in the orders file")
            except Invalid as exc:
                rejected.add("order_items", items_section.file.name, m, str(exc))
                oid = _order_id(items_section, row)
                if oid is not None and oid in orders:
                    bad.setdefault(oid, f"its line item (order_items row {m}) is invalid")
                continue
            if oid in orders:
                orders[oid][1].append(item)
                orders[oid][2].append(("order_items", items_section.file.name, m))
        ledger.rows_read["order_items"] = m
    out = []
    for oid, (fields, items, rows) in orders.items():
        try:
            if oid in bad:
                raise Invalid(bad[oid])
            out.append(records.order(fields, items))
        except Invalid as exc:
            for where in rows:
                rejected.add(*where, str(exc))
    return out


def _order_id(section: Section, row: dict) -> str | None:
    try:
        return records.convert_one(section, "order_id", row)
    except Invalid:
        return None


def _write_customers(customers: dict, writer, ledger: ImportLedger, quiet: bool) -> None:
    rows = list(customers.values())
    view = ProgressView("write crm.customers", float(len(rows)), quiet)
    changed = 0
    for i in range(0, len(rows), CUSTOMER_BATCH):
        changed += writer.apply(rows[i:i + CUSTOMER_BATCH], [])
        ledger.customer_ids.update(r["customer_id"] for r in rows[i:i + CUSTOMER_BATCH])
        view.update(min(i + CUSTOMER_BATCH, len(rows)), f"{changed:,} rows changed")
    view.close(len(rows), f"{len(rows):,} customers, {changed:,} rows changed")


def _send(web: list[dict], orders: list[tuple[dict, int, int]], ledger: ImportLedger, cfg: ImportConfig,
          quiet: bool) -> None:
    """Both streams merged in event-time order (a backfill, as the simulators send history)."""
    web.sort(key=lambda e: e["event_time"])
    orders.sort(key=lambda o: o[0]["order_time"])
    stream = heapq.merge(((e["event_time"], 0, e, 0, 0) for e in web),
                         ((o["order_time"], 1, o, total, n) for o, total, n in orders), key=lambda r: r[:2])
    produce, dumps = ledger.sink.produce, orjson.dumps
    total = len(web) + len(orders)
    view = ProgressView("send events and orders", float(total), quiet)
    sent = 0
    try:
        for _t, kind, rec, cents, n_items in stream:
            key = rec["customer_id"].encode()
            if kind == 0:
                produce(cfg.web_topic, key, dumps(rec))
                ledger.web_event(rec, 0)
            else:
                produce(cfg.purchase_topic, key, dumps(rec))
                ledger.order(rec, cents, n_items, 0)
            sent += 1
            if not sent % 5000:
                view.update(sent, f"{sent:,} sent  web {ledger.web.valid:,}  orders {ledger.purchases.valid:,}")
        ledger.sink.flush()
    finally:
        view.close(sent, f"{sent:,} sent  web {ledger.web.valid:,}  orders {ledger.purchases.valid:,}")

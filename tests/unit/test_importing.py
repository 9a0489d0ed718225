"""Without services: `python -m simulators import` on files the tests write in several shapes (CSV and
Parquet; orders with line items per row, in an order_items file, or without items; bad rows), into a
memory sink and a fake crm.customers writer. Checks the mapping, the value parsers (time zones, epochs,
ISO, decimal commas), the records against the contract, the ledger, the report and wait-for-pipeline's
checks for an import."""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from platform_common.config import REPO
from simulators import pipeline
from simulators.importing import ImportConfig, MappingError, load, run_import, values
from simulators.importing.values import Invalid
from simulators.ledger import ORDER_STATUSES, WEB_TYPES

pytestmark = pytest.mark.unit

UTC = dt.UTC


def ms(*args, tz=UTC) -> int:
    return int(dt.datetime(*args, tzinfo=tz).timestamp() * 1000)


# ---- values ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, fmt, tz, expected", [
    ("2025-03-02T13:05:00Z", "iso", "UTC", ms(2025, 3, 2, 13, 5)),
    ("2025-03-02T14:05:00+01:00", "iso", "America/New_York", ms(2025, 3, 2, 13, 5)),   # an offset wins over tz
    ("2025-03-02 14:05:00", "iso", "Europe/Berlin", ms(2025, 3, 2, 13, 5)),            # winter: UTC+1
    ("2025-07-02 15:05:00", "iso", "Europe/Berlin", ms(2025, 7, 2, 13, 5)),            # summer: UTC+2
    ("2025-03-02", "iso", "Europe/Berlin", ms(2025, 3, 1, 23)),                        # a date: its local midnight
    ("02.03.2025 14:05", "%d.%m.%Y %H:%M", "Europe/Berlin", ms(2025, 3, 2, 13, 5)),
    ("1740920700", "epoch_s", "Europe/Berlin", ms(2025, 3, 2, 13, 5)),                 # epochs ignore tz
    ("1740920700,25", "epoch_s", "UTC", ms(2025, 3, 2, 13, 5) + 250),
    (1740920700, "epoch_s", "UTC", ms(2025, 3, 2, 13, 5)),
    ("1740920700123", "epoch_ms", "UTC", ms(2025, 3, 2, 13, 5) + 123),
    (1740920700123.0, "epoch_ms", "UTC", ms(2025, 3, 2, 13, 5) + 123),
    (dt.datetime(2025, 3, 2, 14, 5), "iso", "Europe/Berlin", ms(2025, 3, 2, 13, 5)),   # Parquet, naive
    (dt.datetime(2025, 3, 2, 13, 5, tzinfo=UTC), "iso", "Europe/Berlin", ms(2025, 3, 2, 13, 5)),
])
def test_times_become_utc_epoch_millis(value, fmt, tz, expected):
    assert values.epoch_ms(value, fmt, tz, "," if "," in str(value) else ".") == expected


@pytest.mark.parametrize("value, fmt, reason", [
    ("yesterday", "iso", "is not an ISO 8601 time"),
    ("2025-13-01", "iso", "is not an ISO 8601 time"),
    ("1740920700123", "epoch_s", "milliseconds? use format: epoch_ms"),
    ("1740920700", "epoch_ms", "(seconds? use format: epoch_s)"),   # seconds given as milliseconds
    ("-5", "epoch_s", "outside 1970-01-12"),
    ("2.3.25", "%d.%m.%Y", "is not a time in format"),
])
def test_bad_times_say_why(value, fmt, reason):
    with pytest.raises(Invalid, match=re.escape(reason)):
        values.epoch_ms(value, fmt, "UTC")


@pytest.mark.parametrize("value, dec, thousands, cents", [
    ("19,99", ",", None, 1999), ("1.234,50", ",", ".", 123450), ("1 234,5", ",", None, 123450),
    ("1,234.50", ".", ",", 123450), ("19.99", ".", None, 1999), (19.99, ",", None, 1999), (5, ".", None, 500),
    ("0.005", ".", None, 1),          # half-up to cents, as the job's DECIMAL(12, 2) cast
])
def test_amounts_with_decimal_commas_and_thousands(value, dec, thousands, cents):
    assert values.cents(value, dec, thousands) == cents


@pytest.mark.parametrize("value, dec, reason", [
    ("19.99", ",", "has a '.' but the decimal separator is ','"), ("abc", ".", "is not a number"),
    ("-3", ".", "is negative"), ("NaN", ".", "is not a finite number"),
])
def test_bad_amounts_say_why(value, dec, reason):
    with pytest.raises(Invalid, match=re.escape(reason)):
        values.cents(value, dec)


def test_dates_in_the_columns_time_zone():
    assert values.date("03.01.2025", "%d.%m.%Y") == dt.date(2025, 1, 3)
    assert values.date("2025-01-03T23:30:00Z", "iso", "Europe/Berlin") == dt.date(2025, 1, 4)
    assert values.date(dt.date(2025, 1, 3)) == dt.date(2025, 1, 3)
    with pytest.raises(Invalid):
        values.date("31.02.2025", "%d.%m.%Y")


def test_ids_that_are_not_uuids_become_stable_uuids():
    u = "FCAFB1ED-3BEE-4F29-A963-FE9278C7ABBC"
    assert values.record_id(u, "order_id") == u.lower()
    a, b = values.record_id("B-5001", "order_id"), values.record_id("B-5001", "order_id")
    assert a == b and values.UUID_RE.match(a) and a != values.record_id("B-5001", "event_id")


# ---- files in several shapes -----------------------------------------------------------------------------
CUSTOMERS = [
    {"id": "X-1", "mail": "a@example.com", "since": "03.01.2025", "land": "de", "via": "Google", "plan": "Gratis",
     "changed": "2025-01-03 09:15"},
    {"id": "X-2", "mail": "b@example.com", "since": "17.02.2025", "land": "AT", "via": "Google", "plan": "Premium",
     "changed": "2025-03-01 18:40"},
    {"id": "X-2", "mail": "b-old@example.com", "since": "17.02.2025", "land": "AT", "via": "Google", "plan": "Gratis",
     "changed": "2025-02-17 08:00"},                                               # older row of X-2: superseded
    {"id": "X-3", "mail": "", "since": "20.02.2025", "land": "DE", "via": "Google", "plan": "Gratis",
     "changed": "2025-02-20 08:00"},                                               # bad: no email
    {"id": "X-4", "mail": "d@example.com", "since": "20.02.2025", "land": "Germany", "via": "Google",
     "plan": "Gratis", "changed": "2025-02-20 08:00"},                             # bad: country
]
CUSTOMER_COLUMNS = {
    "customer_id": "id", "email": "mail", "signup_date": {"column": "since", "format": "%d.%m.%Y"}, "country": "land",
    "acquisition_channel": {"column": "via", "map": {"Google": "organic_search"}},
    "subscription_tier": {"column": "plan", "map": {"Gratis": "free", "Premium": "premium"}},
    "updated_at": "changed",
}
# one row per line item; amounts with decimal commas
ORDER_LINES = [
    {"no": "B-1", "cust": "X-1", "at": "2025-03-02T14:05:00", "pay": "card", "st": "completed", "ship": "DE",
     "sku": "P-17", "qty": "2", "price": "19,99"},
    {"no": "B-1", "cust": "X-1", "at": "2025-03-02T14:05:00", "pay": "card", "st": "completed", "ship": "DE",
     "sku": "P-42", "qty": "1", "price": "1.234,50"},
    {"no": "B-2", "cust": "X-2", "at": "2025-03-05T09:30:00", "pay": "paypal", "st": "cancelled", "ship": "AT",
     "sku": "P-17", "qty": "1", "price": "19,99"},
    {"no": "B-3", "cust": "X-2", "at": "2025-03-06T11:00:00", "pay": "card", "st": "completed", "ship": "AT",
     "sku": "P-08", "qty": "1", "price": "5,00"},
    {"no": "B-3", "cust": "X-2", "at": "2025-03-06T11:00:00", "pay": "card", "st": "completed", "ship": "AT",
     "sku": "P-09", "qty": "zwei", "price": "5,00"},                              # bad line: the whole order goes
    {"no": "B-4", "cust": "X-9", "at": "2025-03-07T11:00:00", "pay": "card", "st": "lost", "ship": "AT",
     "sku": "P-08", "qty": "1", "price": "5,00"},                                 # bad: status
]
ORDER_COLUMNS = {
    "order_id": "no", "customer_id": "cust", "order_time": "at", "currency": {"value": "EUR"},
    "payment_method": "pay", "order_status": "st", "shipping_country": "ship",
}
LINE_COLUMNS = {"product_id": "sku", "quantity": "qty", "unit_price": "price"}
# web events: epoch seconds; the second one lacks a session, the last has an unknown type
WEB = [
    {"c": "X-1", "s": "s-1", "t": "page_view", "url": "/", "p": "", "d": "desktop", "cc": "DE", "ts": "1740920400"},
    {"c": "X-1", "s": "", "t": "product_view", "url": "/p/P-17", "p": "P-17", "d": "desktop", "cc": "DE",
     "ts": "1740920460"},
    {"c": "X-1", "s": "s-1", "t": "checkout_success", "url": "/done", "p": "", "d": "desktop", "cc": "DE",
     "ts": "1740920700"},
    {"c": "X-1", "s": "s-1", "t": "checkout_success", "url": "/done", "p": "", "d": "desktop", "cc": "DE",
     "ts": "1740920700"},                                                         # the same event again
    {"c": "X-7", "s": "s-7", "t": "teleport", "url": "/", "p": "", "d": "mobile", "cc": "US", "ts": "1740920800"},
]
WEB_COLUMNS = {"customer_id": "c", "session_id": "s", "event_type": "t", "page_url": "url", "product_id": "p",
               "device_type": "d", "country": "cc", "event_time": {"column": "ts", "format": "epoch_s"}}


def write_table(path: Path, rows: list[dict]) -> str:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=";")
            w.writeheader()
            w.writerows(rows)
    return path.name


def write_mapping(tmp_path: Path, **sections) -> Path:
    spec = {"timezone": "Europe/Berlin", "decimal": ",", "thousands": "."}
    for name, (rows, columns, ext) in sections.items():
        spec[name] = {"file": write_table(tmp_path / f"{name}.{ext}", rows), "columns": columns}
        if ext == "csv":
            spec[name]["csv"] = {"delimiter": ";"}
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class FakeWriter:
    def __init__(self):
        self.upserts, self.closed = [], False

    def apply(self, upserts, deletes):
        self.upserts += upserts
        return len(upserts)

    def close(self):
        self.closed = True


def do_import(tmp_path, mapping, **kw):
    writer = FakeWriter()
    ledger = run_import(ImportConfig(mapping=mapping, ledger_dir=tmp_path / "ledger", quiet=True, **kw),
                        sink="memory", customer_writer=writer)
    return ledger, writer, json.loads((tmp_path / "ledger" / "summary.json").read_text())


def report(ledger) -> list[tuple[str, int, str]]:
    with ledger.report.open() as fh:
        return [(r["section"], int(r["row"]), r["reason"]) for r in csv.DictReader(fh)]


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def assert_contract(topic: str, rec: dict) -> None:
    """The Flink job's rules (flink_jobs/udf Records.java) and simulators/README.md's record shapes."""
    if topic == "web_events":
        assert list(rec) == ["event_id", "customer_id", "session_id", "event_type", "page_url", "product_id",
                             "search_query", "device_type", "country", "utm_source", "event_time"]
        assert UUID.match(rec["event_id"]) and rec["event_type"] in WEB_TYPES
        assert re.match(r"^[A-Z]{2}$", rec["country"])
        assert all(isinstance(rec[f], str) for f in ("customer_id", "session_id", "device_type"))
        assert isinstance(rec["event_time"], int) and 10 <= len(str(rec["event_time"])) <= 15
    else:
        assert UUID.match(rec["order_id"]) and rec["order_status"] in ORDER_STATUSES
        assert re.match(r"^[A-Z]{3}$", rec["currency"]) and re.match(r"^[A-Z]{2}$", rec["shipping_country"])
        assert isinstance(rec["order_time"], int) and 1 <= len(rec["items"]) <= 20
        for i in rec["items"]:
            assert isinstance(i["product_id"], str) and isinstance(i["quantity"], int) and i["quantity"] >= 1
            assert re.match(r"^[0-9]+(\.[0-9]{1,2})?$", str(i["unit_price"]))
        total = sum(round(i["quantity"] * i["unit_price"] * 100) for i in rec["items"])
        assert round(rec["total_amount"] * 100) == total


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_customers_orders_with_line_items_and_web_events(tmp_path, ext):
    mapping = write_mapping(tmp_path, customers=(CUSTOMERS, CUSTOMER_COLUMNS, ext),
                            orders=(ORDER_LINES, {**ORDER_COLUMNS, **LINE_COLUMNS}, ext),
                            web_events=(WEB, WEB_COLUMNS, ext))
    ledger, writer, s = do_import(tmp_path, mapping)

    # customers: the newest row per id; updated_at in Berlin time; bad rows reported
    assert {c["customer_id"]: (c["email"], c["subscription_tier"], c["country"]) for c in writer.upserts} == {
        "X-1": ("a@example.com", "free", "DE"), "X-2": ("b@example.com", "premium", "AT")}
    assert writer.closed
    x2 = next(c for c in writer.upserts if c["customer_id"] == "X-2")
    assert x2["updated_at"] == ms(2025, 3, 1, 17, 40) and x2["signup_date"] == dt.date(2025, 2, 17)

    msgs = [(t, k.decode(), orjson.loads(v)) for t, k, v in ledger.sink.messages]
    for topic, key, rec in msgs:
        assert_contract(topic, rec)
        assert key == rec["customer_id"]
    times = [r["event_time"] if t == "web_events" else r["order_time"] for t, _, r in msgs]
    assert times == sorted(times)                                       # a backfill, in event-time order
    orders = {r["total_amount"]: r for t, _, r in msgs if t == "purchase_events"}
    assert sorted(orders) == [19.99, 1274.48]                           # B-1 (2 lines) and B-2; B-3, B-4 rejected
    b1 = orders[1274.48]
    assert b1["items"] == [{"product_id": "P-17", "quantity": 2, "unit_price": 19.99},
                           {"product_id": "P-42", "quantity": 1, "unit_price": 1234.5}]
    assert b1["order_time"] == ms(2025, 3, 2, 13, 5) and b1["currency"] == "EUR" and b1["session_id"] is None
    assert b1["order_id"] == values.record_id("B-1", "order_id")
    assert [r["event_type"] for t, _, r in msgs if t == "web_events"] == ["page_view", "checkout_success"]

    assert report(ledger) == [
        ("customers", 4, "email: missing"),
        ("customers", 5, "country: 'Germany' is not an ISO 3166 alpha-2 code"),
        ("web_events", 2, "session_id: missing"),
        ("web_events", 4, "event_id: the same event as row 3"),
        ("web_events", 5, "event_type: 'teleport' is not one of " + ", ".join(WEB_TYPES) + " (translate it with map:)"),
        ("orders", 5, "quantity: 'zwei' is not a number"),
        ("orders", 6, "order_status: 'lost' is not one of completed, cancelled, refunded (translate it with map:)"),
        ("orders", 4, "row 5 of the same order is invalid"),
    ]
    # one line per reason, the row's own values left out
    assert s["rejected"] == 8 and s["rejected_by_reason"]["customers: email: missing"] == 1
    assert "orders: quantity: … is not a number" in s["rejected_by_reason"]

    # the ledger counts exactly what was sent, and wait-for-pipeline scopes it by the imported ids
    assert s["kind"] == "import" and s["topics"]["web_events"]["valid"] == 2
    assert s["topics"]["purchase_events"]["valid"] == 2 and s["purchase_events"]["revenue"] == "1294.47"
    assert s["rows_read"] == {"customers": 5, "web_events": 5, "orders": 6}
    assert s["customers"] == {"final_rows": 2, "ids": ["X-1", "X-2"]} and s["event_customers_not_in_crm"] == 0
    checks = {c.table: c for c in pipeline.checks_for(s)}
    assert {t: c.expected for t, c in checks.items()} == {
        "crm.customers": 2, "cdc.crm_customers": 2, "raw.web_events": 2, "cdc.raw_web_events": 2,
        "raw.purchase_events": 2, "cdc.raw_purchase_events": 2}
    assert checks["crm.customers"].params == {"ids": ["X-1", "X-2"]}
    assert checks["raw.web_events"].params["ids"] == ["X-1", "X-2"]
    assert "customer_id = ANY(%(ids)s)" in checks["raw.web_events"].sql
    assert "has({ids:Array(String)}, customer_id)" in checks["cdc.raw_purchase_events"].sql


def test_orders_without_line_items_and_no_web_events(tmp_path):
    rows = [{"id": "O1", "cust": "X-1", "at": "1740920700000", "sum": "10,50", "pay": "card", "st": "completed",
             "ship": "de"},
            {"id": "O2", "cust": "X-1", "at": "1740920800000", "sum": "", "pay": "card", "st": "completed",
             "ship": "DE"},
            {"id": "O1", "cust": "X-1", "at": "1740920700000", "sum": "10,50", "pay": "card", "st": "completed",
             "ship": "DE"},                                                        # the same row again
            {"id": "O3", "cust": "X-1", "at": "1740920900000", "sum": "1,00", "pay": "card", "st": "completed",
             "ship": "DE"},
            {"id": "O3", "cust": "X-1", "at": "1740920900000", "sum": "2,00", "pay": "card", "st": "completed",
             "ship": "DE"}]                                                        # the same id, another total
    columns = {**ORDER_COLUMNS, "order_id": "id", "total_amount": "sum",
               "order_time": {"column": "at", "format": "epoch_ms"}}
    ledger, writer, s = do_import(tmp_path, write_mapping(tmp_path, orders=(rows, columns, "csv")))
    [(topic, _, value)] = ledger.sink.messages
    rec = orjson.loads(value)
    assert_contract(topic, rec)
    assert rec["items"] == [{"product_id": "unknown", "quantity": 1, "unit_price": 10.5}]
    assert sorted(report(ledger)) == [("orders", 2, "total_amount: missing (an order without line items needs it)"),
                              ("orders", 3, "order_id: the same order as row 1"),
                              ("orders", 4, "total_amount: differs between the rows of the order (rows 4, 5)"),
                              ("orders", 5, "total_amount: differs between the rows of the order (rows 4, 5)")]
    assert writer.upserts == [] and s["customers"]["final_rows"] == 0 and s["topics"]["web_events"]["valid"] == 0
    # its customer is in no customers section: its orders will not reach customer_features (the CLI says so)
    assert ledger.not_in_crm == ["X-1"] and s["event_customers_not_in_crm"] == 1
    # no customers: nothing to expect of crm.customers; no web events: raw.web_events expects 0 of them
    assert [(c.table, c.expected) for c in pipeline.checks_for(s)] == [
        ("raw.web_events", 0), ("cdc.raw_web_events", 0), ("raw.purchase_events", 1), ("cdc.raw_purchase_events", 1)]


def test_orders_with_an_order_items_file_in_parquet(tmp_path):
    orders = [{"id": "O1", "cust": "X-1", "at": dt.datetime(2025, 3, 2, 14, 5), "sum": 24.49, "pay": "card",
               "st": "completed", "ship": "DE"},
              {"id": "O2", "cust": "X-1", "at": dt.datetime(2025, 3, 3, 14, 5), "sum": 99.0, "pay": "card",
               "st": "completed", "ship": "DE"},                                 # total differs from its items
              {"id": "O3", "cust": "X-2", "at": dt.datetime(2025, 3, 4, 10, 0), "sum": 3.0, "pay": "card",
               "st": "refunded", "ship": "AT"}]                                  # no items: one item at the total
    items = [{"order": "O1", "sku": "A", "qty": 1, "price": 19.99}, {"order": "O1", "sku": "B", "qty": 3, "price": 1.5},
             {"order": "O2", "sku": "A", "qty": 1, "price": 19.99}, {"order": "O9", "sku": "A", "qty": 1, "price": 1.0}]
    mapping = write_mapping(tmp_path, orders=(orders, {**ORDER_COLUMNS, "order_id": "id", "total_amount": "sum"},
                                              "parquet"),
                            order_items=(items, {"order_id": "order", "product_id": "sku", "quantity": "qty",
                                                 "unit_price": "price"}, "parquet"))
    ledger, _, s = do_import(tmp_path, mapping)
    recs = {r["order_id"]: r for r in (orjson.loads(v) for _, _, v in ledger.sink.messages)}
    o1, o3 = recs[values.record_id("O1", "order_id")], recs[values.record_id("O3", "order_id")]
    assert o1["total_amount"] == 24.49 and len(o1["items"]) == 2 and o1["order_time"] == ms(2025, 3, 2, 13, 5)
    assert o3["items"] == [{"product_id": "unknown", "quantity": 1, "unit_price": 3}]
    assert o3["order_time"] == ms(2025, 3, 4, 9)                        # a naive Parquet timestamp: Berlin time
    assert len(recs) == 2
    assert sorted(report(ledger)) == [
        ("order_items", 3, "total_amount: 99.00 is not the sum of its line items (19.99)"),
        ("order_items", 4, "order_id: no order with this id in the orders file"),
        ("orders", 2, "total_amount: 99.00 is not the sum of its line items (19.99)")]


def test_web_events_only_with_given_event_ids(tmp_path):
    rows = [dict(r, id=f"{i:08d}-0000-4000-8000-000000000000") for i, r in enumerate(WEB[:1] + WEB[2:3])]
    ledger, _, s = do_import(tmp_path, write_mapping(tmp_path, web_events=(rows, {**WEB_COLUMNS, "event_id": "id"},
                                                                           "parquet")))
    assert [orjson.loads(v)["event_id"] for _, _, v in ledger.sink.messages] == [r["id"] for r in rows]
    assert s["rejected"] == 0 and report(ledger) == []
    assert [c.table for c in pipeline.checks_for(s)][0] == "raw.web_events"


def test_a_dry_run_sends_and_writes_nothing(tmp_path):
    mapping = write_mapping(tmp_path, customers=(CUSTOMERS, CUSTOMER_COLUMNS, "csv"))
    writer = FakeWriter()
    ledger = run_import(ImportConfig(mapping=mapping, ledger_dir=tmp_path / "l", quiet=True, dry_run=True),
                        sink="memory", customer_writer=writer)
    assert writer.upserts == [] and ledger.sink is None and len(report(ledger)) == 2


def test_the_repositorys_example_imports(tmp_path):
    ledger, writer, s = do_import(tmp_path, REPO / "simulators/importing/example/mapping.yaml")
    assert s["customers"]["final_rows"] == 2 and s["topics"]["web_events"]["valid"] == 4
    assert s["topics"]["purchase_events"]["valid"] == 3 and s["rejected"] == 4
    for topic, _, value in ledger.sink.messages:
        assert_contract(topic, orjson.loads(value))


def test_default_runs_pick_the_newest_import(tmp_path):
    from types import SimpleNamespace
    root = tmp_path / "simulator" / "ledger"
    for run_id in ("20260101T000000Z-events-aaaaaa", "20260102T000000Z-import-bbbbbb"):
        (root / run_id).mkdir(parents=True)
        (root / run_id / "summary.json").write_text(json.dumps({"config": {}, "kind": "x"}))
    assert pipeline.default_runs(SimpleNamespace(data_dir=tmp_path)) == ["20260102T000000Z-import-bbbbbb"]


# ---- a bad mapping or file: one line ---------------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ({"orders": {"file": "o.csv", "columns": {**ORDER_COLUMNS, "total_amount": "sum", "order_tme": "x"}}},
     "orders.columns: unknown key 'order_tme'"),
    ({"orders": {"file": "o.csv", "columns": {"order_id": "no"}}}, "orders.columns: required field 'customer_id'"),
    ({"timezone": "Mars/Olympus", "customers": {"file": "c.csv", "columns": CUSTOMER_COLUMNS}},
     "unknown time zone 'Mars/Olympus'"),
    ({"customers": {"file": "c.xlsx", "columns": CUSTOMER_COLUMNS}}, "c.xlsx: expected a .csv or .parquet file"),
    ({"orders": {"file": "o.csv", "columns": ORDER_COLUMNS}}, "map total_amount"),
    ({"customers": {"file": "c.csv", "columns": {**CUSTOMER_COLUMNS, "email": {"column": "m", "value": "x"}}}},
     "give exactly one of column"),
    ({"customers": {"file": "c.csv", "columns": {**CUSTOMER_COLUMNS, "updated_at": {"column": "c", "format": "dmy"}}}},
     "format 'dmy' is none of"),
    ({"decimal": ",,", "customers": {"file": "c.csv", "columns": CUSTOMER_COLUMNS}}, "expected one non-digit"),
    ({"orders": {"file": "o.csv", "columns": {**ORDER_COLUMNS, "total_amount": "t", "quantity": "q"}}},
     "quantity is a line item's: map unit_price too"),
    ({}, "no section to import"),
    ([1, 2], "expected sections"),
])
def test_bad_mappings_fail_with_one_line(tmp_path, spec, message):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(MappingError, match=re.escape(message)) as exc:
        load(path)
    assert "\n" not in str(exc.value)


def test_a_missing_column_or_file_fails_before_anything_is_sent(tmp_path):
    mapping = write_mapping(tmp_path, customers=(CUSTOMERS, {**CUSTOMER_COLUMNS, "email": "e_mail"}, "csv"))
    with pytest.raises(MappingError, match=r"customers.csv \(customers\) has no column 'e_mail' \(mapped to email\); "
                                           r"its columns: id, mail"):
        do_import(tmp_path, mapping)
    (tmp_path / "customers.csv").unlink()
    with pytest.raises(MappingError, match="customers.csv does not exist"):
        do_import(tmp_path, mapping)


def test_a_file_in_another_encoding_fails_with_one_line(tmp_path):
    mapping = write_mapping(tmp_path, customers=(CUSTOMERS, CUSTOMER_COLUMNS, "csv"))
    (tmp_path / "customers.csv").write_bytes("id;mail\nX-1;\u00e9\n".encode("utf-16"))
    with pytest.raises(MappingError, match=r"customers.csv \(customers\): cannot read its header as CSV"):
        do_import(tmp_path, mapping)


def test_the_cli_prints_one_line_for_a_bad_mapping(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("customers: [oops\n")
    out = subprocess.run([sys.executable, "-m", "simulators", "import", str(path), "--dry-run", "-q"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"error: mapping {path}: line 2: not valid YAML")


def test_the_summary_command_describes_an_import(tmp_path):
    from simulators import summary
    _, _, s = do_import(tmp_path, REPO / "simulators/importing/example/mapping.yaml")
    text = summary.render({"events": s, "segmentation": None, "segments": []})
    assert text.splitlines()[0].startswith(f"import {s['run_id']} (")
    assert "2 customers, web_events 4, purchase_events 3 (revenue 1299.47); 4 rows rejected" in text

"""`python -m simulators import` through the real stack: small files of several shapes (CSV with decimal
commas and line items per row, Parquet orders without line items and no web events, CSV web events only
with ISO times and offsets), each with bad rows; then wait-for-pipeline reconciles every import exactly
(PostgreSQL raw.* / crm.customers and the ClickHouse mirror), the rows hold the converted values, and
importing the same files again changes nothing."""
from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from flink_jobs import deploy
from platform_common.config import REPO
from simulators import pipeline
from simulators.importing import ImportConfig, run_import, values

pytestmark = pytest.mark.integration

UTC = dt.UTC


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> str:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path.name


@pytest.fixture
def prefix(stack_up):
    deploy.ensure_job(stack_up)
    return f"imp{uuid.uuid4().hex[:8]}-"     # the user's ids are free-form; this keeps each run's apart


def shop_csv(tmp: Path, p: str) -> Path:
    """Shape 1: semicolon CSV, decimal commas, Berlin local times, orders one row per line item, web events
    in epoch seconds; one bad row per file."""
    tmp.mkdir()
    customers = [
        {"Kunde": f"{p}1", "Mail": "a@example.com", "Seit": "03.01.2025", "Land": "de", "Tarif": "Gratis",
         "Stand": "03.01.2025 09:15"},
        {"Kunde": f"{p}2", "Mail": "b@example.com", "Seit": "17.02.2025", "Land": "AT", "Tarif": "Premium",
         "Stand": "01.03.2025 18:40"},
        {"Kunde": f"{p}3", "Mail": "", "Seit": "20.02.2025", "Land": "DE", "Tarif": "Gratis", "Stand": ""},   # bad
    ]
    orders = [
        {"Nr": f"{p}B1", "Kunde": f"{p}1", "Zeit": "2025-03-02T14:05:00", "Status": "bezahlt", "Art": "P-17",
         "Menge": "2", "Preis": "19,99"},
        {"Nr": f"{p}B1", "Kunde": f"{p}1", "Zeit": "2025-03-02T14:05:00", "Status": "bezahlt", "Art": "P-42",
         "Menge": "1", "Preis": "1.234,50"},
        {"Nr": f"{p}B2", "Kunde": f"{p}2", "Zeit": "2025-03-05T09:30:00", "Status": "storniert", "Art": "P-17",
         "Menge": "1", "Preis": "19,99"},
        {"Nr": f"{p}B3", "Kunde": f"{p}2", "Zeit": "2025-03-06T11:00:00", "Status": "verloren", "Art": "P-08",
         "Menge": "1", "Preis": "5,00"},                                                                      # bad
    ]
    web = [
        {"c": f"{p}1", "s": f"{p}s1", "t": "view", "u": "/", "ts": "1740920400"},
        {"c": f"{p}1", "s": f"{p}s1", "t": "buy", "u": "/done", "ts": "1740920700,5"},
        {"c": f"{p}1", "s": f"{p}s1", "t": "teleport", "u": "/", "ts": "1740920800"},                         # bad
    ]
    mapping = {
        "timezone": "Europe/Berlin", "decimal": ",", "thousands": ".",
        "customers": {"file": write_csv(tmp / "customers.csv", customers, ";"), "csv": {"delimiter": ";"},
                      "columns": {"customer_id": "Kunde", "email": "Mail",
                                  "signup_date": {"column": "Seit", "format": "%d.%m.%Y"}, "country": "Land",
                                  "acquisition_channel": {"value": "direct"},
                                  "subscription_tier": {"column": "Tarif", "map": {"Gratis": "free",
                                                                                   "Premium": "premium"}},
                                  "updated_at": {"column": "Stand", "format": "%d.%m.%Y %H:%M"}}},
        "orders": {"file": write_csv(tmp / "orders.csv", orders, ";"), "csv": {"delimiter": ";"},
                   "columns": {"order_id": "Nr", "customer_id": "Kunde", "order_time": "Zeit",
                               "currency": {"value": "EUR"}, "payment_method": {"value": "card"},
                               "order_status": {"column": "Status", "map": {"bezahlt": "completed",
                                                                            "storniert": "cancelled"}},
                               "shipping_country": {"value": "DE"}, "product_id": "Art", "quantity": "Menge",
                               "unit_price": "Preis"}},
        "web_events": {"file": write_csv(tmp / "web.csv", web, ","),
                       "columns": {"customer_id": "c", "session_id": "s",
                                   "event_type": {"column": "t", "map": {"view": "page_view",
                                                                         "buy": "checkout_success"}},
                                   "page_url": "u", "device_type": {"value": "desktop"}, "country": {"value": "DE"},
                                   "event_time": {"column": "ts", "format": "epoch_s"}}},
    }
    (tmp / "mapping.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True))
    return tmp / "mapping.yaml"


def orders_parquet(tmp: Path, p: str) -> Path:
    """Shape 2: Parquet customers and orders without line items (typed columns), no web events."""
    tmp.mkdir()
    pq.write_table(pa.Table.from_pylist([
        {"id": f"{p}4", "email": "c@example.com", "signup": dt.date(2025, 1, 10), "country": "FR", "tier": "basic",
         "channel": "referral", "changed": dt.datetime(2025, 1, 10, 8, 0, tzinfo=UTC)}]), tmp / "customers.parquet")
    pq.write_table(pa.Table.from_pylist([
        {"id": f"{p}O1", "customer": f"{p}4", "at_ms": 1741255200000, "total": 42.5, "status": "completed"},
        {"id": f"{p}O2", "customer": f"{p}4", "at_ms": 1741341600000, "total": 10.0, "status": "refunded"},
        {"id": f"{p}O3", "customer": f"{p}4", "at_ms": 1741428000000, "total": -3.0, "status": "completed"},  # bad
    ]), tmp / "orders.parquet")
    mapping = {
        "customers": {"file": "customers.parquet",
                      "columns": {"customer_id": "id", "email": "email", "signup_date": "signup", "country": "country",
                                  "acquisition_channel": "channel", "subscription_tier": "tier",
                                  "updated_at": "changed"}},
        "orders": {"file": "orders.parquet",
                   "columns": {"order_id": "id", "customer_id": "customer",
                               "order_time": {"column": "at_ms", "format": "epoch_ms"}, "total_amount": "total",
                               "currency": {"value": "USD"}, "payment_method": {"value": "paypal"},
                               "order_status": "status", "shipping_country": {"value": "FR"}}},
    }
    (tmp / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    return tmp / "mapping.yaml"


def web_only_csv(tmp: Path, p: str) -> Path:
    """Shape 3: web events only, ISO times with offsets and given UUIDs; customers that have no orders."""
    tmp.mkdir()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    web = [
        {"id": ids[0], "c": f"{p}5", "s": f"{p}s5", "t": "page_view", "at": "2025-03-10T08:00:00+01:00"},
        {"id": ids[1], "c": f"{p}5", "s": f"{p}s5", "t": "search", "at": "2025-03-10T07:01:30Z"},
        {"id": ids[2], "c": f"{p}5", "s": "", "t": "logout", "at": "2025-03-10T07:02:00Z"},                 # bad
    ]
    mapping = {"web_events": {"file": write_csv(tmp / "web.csv", web),
                              "columns": {"event_id": "id", "customer_id": "c", "session_id": "s", "event_type": "t",
                                          "device_type": {"value": "mobile"}, "country": {"value": "US"},
                                          "event_time": "at"}}}
    (tmp / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    return tmp / "mapping.yaml"


def test_imports_of_several_shapes_reconcile_exactly(stack_up, prefix, tmp_path):
    settings = stack_up
    shop, parquet, web_only = (shop_csv(tmp_path / "shop", prefix), orders_parquet(tmp_path / "parquet", prefix),
                               web_only_csv(tmp_path / "web", prefix))
    # the command users run, for the first; the Python API for the others
    out = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "simulators", "import", str(shop), "--ledger-dir",
                          str(tmp_path / "ledger-shop"), "--run-id", "it-import-shop", "-q"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "3 rows rejected" in out.stdout and "customers: email: missing" in out.stdout
    ledgers = [tmp_path / "ledger-shop"]
    for name, mapping in (("parquet", parquet), ("web", web_only)):
        run_import(ImportConfig(mapping=mapping, ledger_dir=tmp_path / f"ledger-{name}", quiet=True),
                   settings=settings)
        ledgers.append(tmp_path / f"ledger-{name}")

    summaries = [json.loads((d / "summary.json").read_text()) for d in ledgers]
    assert [s["rejected"] for s in summaries] == [3, 1, 1]
    assert [(s["customers"]["final_rows"], s["topics"]["web_events"]["valid"],
             s["topics"]["purchase_events"]["valid"]) for s in summaries] == [(2, 2, 2), (1, 0, 2), (0, 2, 0)]
    with (tmp_path / "ledger-parquet" / "rejected.csv").open() as fh:
        assert [r["reason"] for r in csv.DictReader(fh)] == ["total_amount: -3.0 is negative"]

    result = pipeline.wait(settings, ledgers, timeout=480, progress=None)
    assert all(c["got"] == c["expected"] for c in result["checks"])

    # the rows hold the converted values
    with psycopg.connect(settings.postgres_dsn(settings.postgres_bi_user, settings.postgres_bi_password)) as pg:
        customers = pg.execute("SELECT customer_id, email, signup_date, country, subscription_tier, updated_at "
                               "FROM crm.customers WHERE customer_id LIKE %s ORDER BY 1", (prefix + "%",)).fetchall()
        assert customers == [
            (f"{prefix}1", "a@example.com", dt.date(2025, 1, 3), "DE", "free",
             dt.datetime(2025, 1, 3, 8, 15, tzinfo=UTC)),
            (f"{prefix}2", "b@example.com", dt.date(2025, 2, 17), "AT", "premium",
             dt.datetime(2025, 3, 1, 17, 40, tzinfo=UTC)),
            (f"{prefix}4", "c@example.com", dt.date(2025, 1, 10), "FR", "basic",
             dt.datetime(2025, 1, 10, 8, tzinfo=UTC)),
        ]
        orders = {r[0]: r[1:] for r in pg.execute(
            "SELECT order_id::text, total_amount, item_count, order_time, currency FROM raw.purchase_events "
            "WHERE customer_id LIKE %s", (prefix + "%",)).fetchall()}
        oid = lambda s: values.record_id(prefix + s, "order_id")   # noqa: E731
        assert orders == {
            oid("B1"): (Decimal("1274.48"), 3, dt.datetime(2025, 3, 2, 13, 5, tzinfo=UTC), "EUR"),
            oid("B2"): (Decimal("19.99"), 1, dt.datetime(2025, 3, 5, 8, 30, tzinfo=UTC), "EUR"),
            oid("O1"): (Decimal("42.50"), 1, dt.datetime(2025, 3, 6, 10, tzinfo=UTC), "USD"),
            oid("O2"): (Decimal("10.00"), 1, dt.datetime(2025, 3, 7, 10, tzinfo=UTC), "USD"),
        }
        web = pg.execute("SELECT event_type, event_time FROM raw.web_events WHERE customer_id LIKE %s "
                         "ORDER BY event_time", (prefix + "%",)).fetchall()
        assert web == [("page_view", dt.datetime(2025, 3, 2, 13, 0, tzinfo=UTC)),
                       ("checkout_success", dt.datetime(2025, 3, 2, 13, 5, 0, 500000, tzinfo=UTC)),
                       ("page_view", dt.datetime(2025, 3, 10, 7, 0, tzinfo=UTC)),
                       ("search", dt.datetime(2025, 3, 10, 7, 1, 30, tzinfo=UTC))]

    # importing the same files again sends the same ids: the pipeline ends with the same rows
    again = run_import(ImportConfig(mapping=shop, ledger_dir=tmp_path / "ledger-again", quiet=True),
                       settings=settings)
    assert again.valid == 4
    result = pipeline.wait(settings, ledgers + [tmp_path / "ledger-again"], timeout=480, progress=None)
    assert all(c["got"] == c["expected"] for c in result["checks"])

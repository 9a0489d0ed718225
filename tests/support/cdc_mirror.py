"""A CDC mirror (the ClickHouse `cdc` tables) filled directly from the simulators, for dbt tests and
benchmarks while the streaming path (Flink -> PostgreSQL -> Debezium -> CDC sink) is not in the way.

`create_mirror(client, database)` creates a database with exactly the migrations' DDL
(sql/clickhouse/migrations/00002_cdc_mirror.sql and the customers' history of 00005, the database name
replaced). `simulate()` runs the
customer timeline and the event simulator in-process (memory sink) and turns them into mirror rows
as the CDC sink writes them: every customer change is a version (_op c/u/d, deletes are tombstones
that carry only the key), every event/order a streamed insert, some orders get a later status
change (a second version) and some rows are replayed with the same _version (the sink's
at-least-once replays, which FINAL collapses). `expected_*` recompute the marts in pandas from
those rows, independently of dbt.
"""
from __future__ import annotations

import datetime as dt
import decimal
import random
import re
import uuid
from dataclasses import dataclass, field

import orjson
import pandas as pd

from platform_common.config import REPO
from simulators import run
from simulators.customers import timeline

MIGRATIONS = REPO / "sql" / "clickhouse" / "migrations"
# the mirror's tables, then the customers' history table and the materialized view that fills it
MIGRATION_TABLES = {"00002_cdc_mirror.sql": 3, "00005_customer_history.sql": 2}
UTC = dt.UTC
CUSTOMER_COLS = ["customer_id", "email", "signup_date", "country", "acquisition_channel", "subscription_tier",
                 "updated_at", "_version", "_is_deleted", "_op", "_source_ts_ms"]
WEB_COLS = ["event_id", "customer_id", "session_id", "event_type", "page_url", "product_id", "search_query",
            "device_type", "country", "utm_source", "event_time", "kafka_partition", "kafka_offset", "ingested_at",
            "_version", "_is_deleted", "_op", "_source_ts_ms"]
ORDER_COLS = ["order_id", "customer_id", "session_id", "order_time", "items", "item_count", "total_amount",
              "currency", "payment_method", "order_status", "shipping_country", "kafka_partition", "kafka_offset",
              "ingested_at", "_version", "_is_deleted", "_op", "_source_ts_ms"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def mirror_ddl(database: str) -> list[str]:
    """The migrations' CREATE statements (tables and the history's materialized view) for `database`
    instead of `cdc`."""
    ddl = []
    for name, count in MIGRATION_TABLES.items():
        text = (MIGRATIONS / name).read_text().split("-- +goose Down")[0]
        statements = [s for s in re.findall(r"-- \+goose StatementBegin\n(.*?)-- \+goose StatementEnd", text, re.S)
                      if s.lstrip().startswith("CREATE")]
        assert len(statements) == count, f"expected {count} CREATE statements in {name}"
        ddl += [s.replace("cdc.", f"{database}.").strip().rstrip(";") for s in statements]
    return ddl


def create_mirror(client, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for ddl in mirror_ddl(database):
        client.command(ddl)


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


class _Versions:
    """Monotonic _version values as the sink derives them: LSN * 2^16 + 1 for streamed changes."""

    def __init__(self, start: int = 1_000_000):
        self.lsn = start

    def next(self) -> int:
        self.lsn += 8
        return (self.lsn << 16) + 1


@dataclass
class MirrorRows:
    customers: list[list] = field(default_factory=list)
    web: list[list] = field(default_factory=list)
    orders: list[list] = field(default_factory=list)

    def extend(self, other: MirrorRows) -> None:
        self.customers += other.customers
        self.web += other.web
        self.orders += other.orders

    def insert(self, client, database: str) -> None:
        for table, rows, cols in (("crm_customers", self.customers, CUSTOMER_COLS),
                                  ("raw_web_events", self.web, WEB_COLS),
                                  ("raw_purchase_events", self.orders, ORDER_COLS)):
            if rows:
                client.insert(f"{database}.{table}", rows, column_names=cols)

    # -- the live state, as FINAL shows it ---------------------------------------------------------
    @staticmethod
    def _final(rows: list[list], cols: list[str], key: str) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=cols)
        df = df.sort_values("_version").drop_duplicates(key, keep="last")
        return df[df["_is_deleted"] == 0].reset_index(drop=True)

    def live_customers(self) -> pd.DataFrame:
        return self._final(self.customers, CUSTOMER_COLS, "customer_id")

    def live_web(self) -> pd.DataFrame:
        df = self._final(self.web, WEB_COLS, "event_id")
        df["event_id"] = df["event_id"].astype(str)
        return df

    def live_orders(self) -> pd.DataFrame:
        df = self._final(self.orders, ORDER_COLS, "order_id")
        df["order_id"] = df["order_id"].astype(str)
        df["amount"] = df["total_amount"].astype(float)
        return df


class Builder:
    """Makes mirror rows; one Builder per mirror keeps _version and Kafka offsets increasing."""

    def __init__(self, seed: int = 7):
        self.versions = _Versions()
        self.offset = 0
        self.rng = random.Random(seed)

    def customer_row(self, row: dict, op: str, t_ms: int) -> list:
        v = self.versions.next()
        if op == "d":   # a tombstone: the key, defaults elsewhere
            return [row["customer_id"], "", dt.date(1970, 1, 1), "", "", "", EPOCH, v, 1, "d", t_ms]
        return [row["customer_id"], row["email"], row["signup_date"], row["country"], row["acquisition_channel"],
                row["subscription_tier"], _ts(row["updated_at"]), v, 0, op, t_ms]

    def web_row(self, r: dict) -> list:
        self.offset += 1
        t = r["event_time"]
        return [r["event_id"], r["customer_id"], r["session_id"], r["event_type"], r["page_url"], r["product_id"],
                r["search_query"], r["device_type"], r["country"], r["utm_source"], _ts(t), 0, self.offset,
                _ts(t + 900), self.versions.next(), 0, "c", t + 1000]

    def order_row(self, r: dict, status: str | None = None, version: int | None = None) -> list:
        self.offset += 1
        t = r["order_time"]
        return [r["order_id"], r["customer_id"], r["session_id"], _ts(t), orjson.dumps(r["items"]).decode(),
                sum(i["quantity"] for i in r["items"]), decimal.Decimal(str(r["total_amount"])).quantize(
                    decimal.Decimal("0.01")), r["currency"], r["payment_method"], status or r["order_status"],
                r["shipping_country"], 0, self.offset, _ts(t + 900), version or self.versions.next(), 0,
                "u" if status else "c", t + 1000]

    def web_tombstone(self, event_id: str) -> list:
        return [event_id, "", "", "", None, None, None, "", "", None, EPOCH, 0, 0, EPOCH, self.versions.next(), 1,
                "d", 0]

    def order_tombstone(self, order_id: str) -> list:
        return [order_id, "", None, EPOCH, "", 0, decimal.Decimal("0.00"), "", "", "", "", 0, 0, EPOCH,
                self.versions.next(), 1, "d", 0]


@dataclass
class Simulation:
    rows: MirrorRows
    start: dt.datetime
    end: dt.datetime
    population: object
    web_records: int
    order_records: int


def simulate(customers: int, days: float, seed: int = 42, start: dt.datetime = dt.datetime(2026, 1, 5, tzinfo=UTC),
             status_changes: float = 0.02, replays: float = 0.01, order_deletes: int = 1,
             builder: Builder | None = None) -> tuple[Simulation, Builder]:
    """`customers` customers over `days` days of history, as mirror rows (see the module docstring)."""
    b = builder or Builder(seed)
    ledger = run(customers=customers, days=days, seed=seed, start=start, sink="memory", quiet=True, ledger="none",
                 write_ground_truth=False)
    pop = ledger.population
    rows = MirrorRows()
    # the CRM: every change of the timeline is a version of its customer
    state: dict[str, dict] = {}
    by_id = pop.by_id
    for ch in timeline(pop):
        if ch.op == "insert":
            c = by_id[ch.customer_id]
            state[ch.customer_id] = {"customer_id": c.customer_id, "email": c.email, "signup_date": c.signup_date,
                                     "country": c.country, "acquisition_channel": c.acquisition_channel,
                                     "subscription_tier": c.subscription_tier, "updated_at": ch.t_ms}
            rows.customers.append(b.customer_row(state[ch.customer_id], "c", ch.t_ms))
        elif ch.op == "update":
            state[ch.customer_id][ch.field] = ch.new
            state[ch.customer_id]["updated_at"] = ch.t_ms
            rows.customers.append(b.customer_row(state[ch.customer_id], "u", ch.t_ms))
        else:
            rows.customers.append(b.customer_row(state.pop(ch.customer_id), "d", ch.t_ms))
    # events and orders, in the order the simulator sent them
    n_web = n_orders = 0
    orders: list[dict] = []
    for topic, _key, value in ledger.sink.messages:
        rec = orjson.loads(value)
        if topic == "web_events":
            rows.web.append(b.web_row(rec))
            n_web += 1
        else:
            rows.orders.append(b.order_row(rec))
            orders.append(rec)
            n_orders += 1
    rng = b.rng
    # later status changes (completed -> refunded / cancelled): a second, newer version of the order
    for rec in orders:
        if rec["order_status"] == "completed" and rng.random() < status_changes:
            rows.orders.append(b.order_row(rec, status=rng.choice(["refunded", "cancelled"])))
    # the sink's replays: the same row with the same _version again
    for lst in (rows.web, rows.orders, rows.customers):
        lst += [list(r) for r in rng.sample(lst, int(len(lst) * replays))]
    # deleted orders (by hand in PostgreSQL): tombstones
    for rec in rng.sample(orders, min(order_deletes, len(orders))):
        rows.orders.append(b.order_tombstone(rec["order_id"]))
    end = start + dt.timedelta(days=days)
    return Simulation(rows, start, end, pop, n_web, n_orders), b


# -- independent expectations (pandas) -----------------------------------------------------------
def default_snapshot(rows: MirrorRows) -> dt.date:
    web, orders, customers = rows.live_web(), rows.live_orders(), rows.live_customers()
    newest = max(web["event_time"].max(), orders["order_time"].max(),
                 pd.Timestamp(customers["signup_date"].max(), tz="UTC"))
    return (newest.date() if hasattr(newest, "date") else newest) + dt.timedelta(days=1)


def funnel_step(events: pd.DataFrame) -> int:
    """The ordered funnel of one session (what windowFunnel computes for it)."""
    steps = ["product_view", "add_to_cart", "checkout_start", "checkout_success"]
    reached = 0
    for et in events.sort_values(["event_time", "event_id"])["event_type"]:
        if reached < 4 and et == steps[reached]:
            reached += 1
    return reached


def expected_sessions(rows: MirrorRows) -> pd.DataFrame:
    web = rows.live_web().sort_values(["event_time", "event_id"])
    g = web.groupby("session_id", sort=True)
    out = pd.DataFrame({
        "customer_id": g["customer_id"].first(),
        "session_start": g["event_time"].min(),
        "session_end": g["event_time"].max(),
        "events": g.size(),
        "page_views": g["event_type"].apply(lambda s: int((s == "page_view").sum())),
        "device_type": g["device_type"].first(),
        "country": g["country"].first(),
        "converted": g["event_type"].apply(lambda s: bool((s == "checkout_success").any())),
        "last_login_at": web[web["event_type"] == "login"].groupby("session_id")["event_time"].max(),
    })
    out["session_date"] = out["session_start"].dt.date
    return out


def expected_rfm(rows: MirrorRows, snapshot: dt.date) -> pd.DataFrame:
    cust = rows.live_customers()
    cust = cust[cust["signup_date"] < snapshot].set_index("customer_id")
    orders = rows.live_orders()
    orders = orders[(orders["order_time"].dt.date < snapshot) & (orders["order_status"] == "completed")]
    g = orders.groupby("customer_id")
    freq = g.size().reindex(cust.index, fill_value=0)
    monetary = g["total_amount"].sum().reindex(cust.index).fillna(decimal.Decimal("0"))
    last = g["order_time"].max().reindex(cust.index)
    tenure = cust["signup_date"].map(lambda d: (snapshot - d).days)
    recency = pd.Series([(snapshot - t.date()).days if pd.notna(t) else ten for t, ten in zip(last, tenure)],
                        index=cust.index)
    df = pd.DataFrame({"tenure_days": tenure, "recency_days": recency, "frequency": freq,
                       "monetary": monetary.map(float)})
    n = len(df)

    def score(values: pd.Series, ascending: bool) -> pd.Series:
        rank = values.rank(method="min", ascending=ascending)   # SQL rank(): ties share the lowest
        return (1 + (5 * (rank - 1)) // n).astype(int)

    df["r_score"] = score(-df["recency_days"], True)
    df["f_score"] = score(df["frequency"], True)
    df["m_score"] = score(df["monetary"], True)
    return df


def expected_features(rows: MirrorRows, snapshot: dt.date) -> pd.DataFrame:
    """customer_features for `snapshot`, from the rows alone (spark_ml/features.py definitions)."""
    rfm = expected_rfm(rows, snapshot)
    cust = rows.live_customers().set_index("customer_id").loc[rfm.index]
    sessions = expected_sessions(rows)
    sessions = sessions[sessions["session_date"] < snapshot]
    orders = rows.live_orders()
    orders = orders[orders["order_time"].dt.date < snapshot].copy()
    orders["date"] = orders["order_time"].dt.date
    completed = orders[orders["order_status"] == "completed"]

    def count_since(df: pd.DataFrame, date_col: str, days: int) -> pd.Series:
        sel = df[df[date_col] >= snapshot - dt.timedelta(days=days)]
        return sel.groupby("customer_id").size().reindex(rfm.index, fill_value=0)

    out = pd.DataFrame(index=rfm.index)
    out["snapshot_date"] = snapshot
    out["signup_date"] = cust["signup_date"]
    out["country"] = cust["country"]
    out["acquisition_channel"] = cust["acquisition_channel"]
    out["subscription_tier"] = cust["subscription_tier"]
    out = out.join(rfm[["tenure_days", "recency_days", "frequency", "monetary"]])
    out["avg_order_value"] = [m / f if f else None for m, f in zip(out["monetary"], out["frequency"])]
    for d in (7, 30, 90):
        out[f"sessions_{d}d"] = count_since(sessions, "session_date", d)
    for d in (7, 30, 90):
        out[f"orders_{d}d"] = count_since(completed, "date", d)
    rev90 = completed[completed["date"] >= snapshot - dt.timedelta(days=90)].groupby("customer_id")["amount"].sum()
    out["revenue_90d"] = rev90.reindex(rfm.index, fill_value=0.0).round(2)
    out["activity_trend"] = (out["sessions_30d"] + 1) / (out["sessions_90d"] / 3 + 1)
    out["conversion_rate"] = [o / s if s else None for o, s in zip(out["orders_90d"], out["sessions_90d"])]
    out["cancellations"] = orders[orders["order_status"] == "cancelled"].groupby("customer_id").size().reindex(
        rfm.index, fill_value=0)
    out["refunds"] = orders[orders["order_status"] == "refunded"].groupby("customer_id").size().reindex(
        rfm.index, fill_value=0)
    logins = sessions.dropna(subset=["last_login_at"])
    logins = logins[logins["last_login_at"].dt.date < snapshot].groupby("customer_id")["last_login_at"].max()
    out["days_since_last_login"] = [None if pd.isna(t) else (snapshot - t.date()).days
                                    for t in logins.reindex(rfm.index)]
    return out.reset_index()


def expected_daily_kpis(rows: MirrorRows) -> pd.DataFrame:
    orders = rows.live_orders()
    orders["date"] = orders["order_time"].dt.date
    completed = orders[orders["order_status"] == "completed"]
    sessions = expected_sessions(rows)
    days = sorted(set(orders["date"]) | set(sessions["session_date"]))
    active = pd.concat([sessions[["session_date", "customer_id"]].rename(columns={"session_date": "date"}),
                        orders[["date", "customer_id"]]])
    out = pd.DataFrame(index=pd.Index(days, name="kpi_date"))
    out["active_customers"] = active.groupby("date")["customer_id"].nunique().reindex(out.index, fill_value=0)
    out["sessions"] = sessions.groupby("session_date").size().reindex(out.index, fill_value=0)
    out["orders"] = orders.groupby("date").size().reindex(out.index, fill_value=0)
    out["completed_orders"] = completed.groupby("date").size().reindex(out.index, fill_value=0)
    out["revenue"] = completed.groupby("date")["total_amount"].sum().reindex(out.index).fillna(decimal.Decimal(0))
    return out.reset_index()


# -- changes after a first build (incremental tests) ---------------------------------------------
def new_session(b: Builder, customer: pd.Series, day: dt.date, amount: str, seed: int = 1) -> MirrorRows:
    """A new converting session of `customer` on `day` (12:00 UTC) and its completed order."""
    rng = random.Random(seed)
    uid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731
    sid = uid()
    t0 = int(dt.datetime.combine(day, dt.time(12), UTC).timestamp() * 1000)
    steps = [("page_view", "/"), ("product_view", "/product/P00001"), ("add_to_cart", "/cart"),
             ("checkout_start", "/checkout"), ("checkout_success", "/checkout/success")]
    out = MirrorRows()
    for k, (etype, url) in enumerate(steps):
        out.web.append(b.web_row({"event_id": uid(), "customer_id": customer["customer_id"], "session_id": sid,
                                  "event_type": etype, "page_url": url,
                                  "product_id": "P00001" if "product" in url or etype == "add_to_cart" else None,
                                  "search_query": None, "device_type": "desktop", "country": customer["country"],
                                  "utm_source": None, "event_time": t0 + k * 30_000}))
    out.orders.append(b.order_row({"order_id": uid(), "customer_id": customer["customer_id"], "session_id": sid,
                                   "order_time": t0 + 4 * 30_000 + 800,
                                   "items": [{"product_id": "P00001", "quantity": 1, "unit_price": float(amount)}],
                                   "total_amount": float(amount), "currency": "USD", "payment_method": "card",
                                   "order_status": "completed", "shipping_country": customer["country"]}))
    return out


def order_status_change(b: Builder, row: list, status: str) -> list:
    """A newer version of the order mirror row `row` with another status."""
    new = list(row)
    new[ORDER_COLS.index("order_status")] = status
    new[ORDER_COLS.index("_version")] = b.versions.next()
    new[ORDER_COLS.index("_op")] = "u"
    return new


def customer_change(b: Builder, live_row: pd.Series, t: dt.datetime, **changes) -> list:
    """A newer version of a live customer (an update with `changes`, or delete=True for a tombstone)."""
    row = {k: live_row[k] for k in ("customer_id", "email", "signup_date", "country", "acquisition_channel",
                                    "subscription_tier")}
    ms = int(t.timestamp() * 1000)
    if changes.pop("delete", False):
        return b.customer_row(row, "d", ms)
    row.update(changes)
    row["updated_at"] = ms
    return b.customer_row(row, "u", ms)


def late_event(b: Builder, event_row: list, seconds_before: int) -> list:
    """A page_view of the same session `seconds_before` its first event, arriving late."""
    r = dict(zip(WEB_COLS, event_row))
    t = int(r["event_time"].timestamp() * 1000) - seconds_before * 1000
    rng = b.rng
    return b.web_row({"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                      "customer_id": r["customer_id"], "session_id": r["session_id"], "event_type": "page_view",
                      "page_url": "/deals", "product_id": None, "search_query": None,
                      "device_type": r["device_type"], "country": r["country"], "utm_source": r["utm_source"],
                      "event_time": t})

"""The ledger: exactly what a simulator run sent, for tests and benchmarks to reconcile against.

Counting rules (the same in memory and in the files):

* **valid** records are the generated events, each sent once under its own id. They are the
  only records in the aggregates (per type, per 1-minute window, per customer) - i.e. what a
  correct, de-duplicating pipeline must end up with.
* **late** records are valid records that were held back and sent `late_delay_s` after their
  event time (out of order). They are valid too (so they are in the aggregates); `late` counts
  them again separately, also per window (`late_windows.csv`).
* **duplicates** are exact re-sends (same bytes, same key, same event_id/order_id) of a valid
  record. Not in the aggregates.
* **malformed** records (invalid JSON, a missing required field, a wrong type, an unknown
  event_type / order_status) have their own fresh ids and are not in the aggregates.

messages = valid + duplicates + malformed, per topic: exactly what a consumer reads back.

Windows are 1-minute tumbling windows on event time (epoch ms floored to the minute). Amounts
are kept in integer cents; `revenue` is the sum of `total_amount` over all orders of the window
whatever their status, `completed_revenue` over completed orders only.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEB_TYPES = ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_start",
             "checkout_success", "login", "logout")
WEB_TYPE_INDEX = {t: i for i, t in enumerate(WEB_TYPES)}
ORDER_STATUSES = ("completed", "cancelled", "refunded")
_N = len(WEB_TYPES)
WINDOW_MS = 60_000


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class _IsoCache(dict):
    """window start ms -> ISO string, computed once per window."""

    def __missing__(self, ms: int) -> str:
        value = self[ms] = _iso(ms)
        return value


@dataclass
class TopicCounts:
    topic: str
    messages: int = 0
    valid: int = 0
    duplicates: int = 0
    malformed: int = 0
    late: int = 0
    malformed_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "messages": self.messages, "valid": self.valid,
                "duplicates": self.duplicates, "malformed": self.malformed, "late": self.late,
                "malformed_by_reason": dict(sorted(self.malformed_by_reason.items()))}


class EventLedger:
    """Aggregates of every record sent by one event-simulator run (see the module docstring)."""

    def __init__(self, run_id: str, config: dict[str, Any], web_topic: str, purchase_topic: str,
                 detail: bool = False):
        self.run_id = run_id
        self.config = config
        self.web = TopicCounts(web_topic)
        self.purchases = TopicCounts(purchase_topic)
        self.web_by_type = [0] * _N
        self.orders_by_status = dict.fromkeys(ORDER_STATUSES, 0)
        self.revenue_cents_by_status = dict.fromkeys(ORDER_STATUSES, 0)
        self.items_by_status = dict.fromkeys(ORDER_STATUSES, 0)
        # (window_start_ms, country, device_type) -> [count per WEB_TYPES..., set(session_id), set(customer_id)]
        self.web_windows: dict[tuple[int, str, str], list] = {}
        # (window_start_ms, shipping_country, payment_method) -> [orders, revenue_cents, items,
        #                                                         completed, cancelled, refunded, completed_cents]
        self.order_windows: dict[tuple[int, str, str], list[int]] = {}
        self.late_windows: dict[tuple[int, str], int] = {}
        # customer_id -> [web_events, orders, revenue_cents, items, first_event_ms, last_event_ms]
        self.customers: dict[str, list[int]] = {}
        self.sessions: set[str] = set()
        self.detail = detail
        self.rows: list[tuple] = []   # (seq, topic, key, kind, record_id, type, event_time_ms, late, delay_ms, reason)
        self.started_at = dt.datetime.now(dt.UTC)
        self.finished_at: dt.datetime | None = None
        self.elapsed_s = 0.0
        self.files: dict[str, str] = {}
        self.sink = None          # the sink the run used (a MemorySink keeps the messages)
        self.population = None    # the customer population (with its hidden churn ground truth)
        self.directory: Path | None = None

    # ---- recording (hot path: keep it lean) -------------------------------------------------------
    def web_event(self, ev: dict, late_delay_ms: int) -> None:
        t = ev["event_time"]
        et = ev["event_type"]
        cid = ev["customer_id"]
        sid = ev["session_id"]
        self.web.messages += 1
        self.web.valid += 1
        i = WEB_TYPE_INDEX[et]
        self.web_by_type[i] += 1
        w = t - t % WINDOW_MS
        key = (w, ev["country"], ev["device_type"])
        agg = self.web_windows.get(key)
        if agg is None:
            agg = self.web_windows[key] = [0] * _N + [set(), set()]
        agg[i] += 1
        agg[_N].add(sid)
        agg[_N + 1].add(cid)
        self.sessions.add(sid)
        cust = self.customers.get(cid)
        if cust is None:
            self.customers[cid] = [1, 0, 0, 0, t, t]
        else:
            cust[0] += 1
            if t < cust[4]:
                cust[4] = t
            if t > cust[5]:
                cust[5] = t
        if late_delay_ms:
            self.web.late += 1
            lk = (w, "web_events")
            self.late_windows[lk] = self.late_windows.get(lk, 0) + 1
        if self.detail:
            self.rows.append((self.web.topic, cid, "valid", ev["event_id"], et, t, late_delay_ms > 0, late_delay_ms, None))

    def order(self, o: dict, total_cents: int, n_items: int, late_delay_ms: int) -> None:
        t = o["order_time"]
        status = o["order_status"]
        cid = o["customer_id"]
        self.purchases.messages += 1
        self.purchases.valid += 1
        self.orders_by_status[status] += 1
        self.revenue_cents_by_status[status] += total_cents
        self.items_by_status[status] += n_items
        w = t - t % WINDOW_MS
        key = (w, o["shipping_country"], o["payment_method"])
        agg = self.order_windows.get(key)
        if agg is None:
            agg = self.order_windows[key] = [0, 0, 0, 0, 0, 0, 0]
        agg[0] += 1
        agg[1] += total_cents
        agg[2] += n_items
        agg[3 + ORDER_STATUSES.index(status)] += 1
        if status == "completed":
            agg[6] += total_cents
        cust = self.customers.get(cid)
        if cust is None:
            cust = self.customers[cid] = [0, 0, 0, 0, t, t]
        cust[1] += 1
        cust[2] += total_cents
        cust[3] += n_items
        if t < cust[4]:
            cust[4] = t
        if t > cust[5]:
            cust[5] = t
        if late_delay_ms:
            self.purchases.late += 1
            lk = (w, "purchase_events")
            self.late_windows[lk] = self.late_windows.get(lk, 0) + 1
        if self.detail:
            self.rows.append((self.purchases.topic, cid, "valid", o["order_id"], status, t, late_delay_ms > 0,
                              late_delay_ms, None))

    def duplicate(self, is_web: bool, rec: dict) -> None:
        counts = self.web if is_web else self.purchases
        counts.messages += 1
        counts.duplicates += 1
        if self.detail:
            rid, typ, t = ((rec["event_id"], rec["event_type"], rec["event_time"]) if is_web
                           else (rec["order_id"], rec["order_status"], rec["order_time"]))
            self.rows.append((counts.topic, rec["customer_id"], "duplicate", rid, typ, t, False, 0, None))

    def malformed(self, is_web: bool, reason: str, customer_id: str, record_id: str | None) -> None:
        counts = self.web if is_web else self.purchases
        counts.messages += 1
        counts.malformed += 1
        counts.malformed_by_reason[reason] = counts.malformed_by_reason.get(reason, 0) + 1
        if self.detail:
            self.rows.append((counts.topic, customer_id, "malformed", record_id, None, None, False, 0, reason))

    # ---- results -----------------------------------------------------------------------------------
    @property
    def messages(self) -> int:
        return self.web.messages + self.purchases.messages

    @property
    def valid(self) -> int:
        return self.web.valid + self.purchases.valid

    def web_counts(self) -> dict[str, int]:
        return dict(zip(WEB_TYPES, self.web_by_type))

    @property
    def min_event_ms(self) -> int | None:
        return min((c[4] for c in self.customers.values()), default=None)

    @property
    def max_event_ms(self) -> int | None:
        return max((c[5] for c in self.customers.values()), default=None)

    def summary(self) -> dict[str, Any]:
        orders = sum(self.orders_by_status.values())
        return {
            "run_id": self.run_id,
            "kind": "events",
            "config": self.config,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "elapsed_s": round(self.elapsed_s, 3),
            "messages": self.messages,
            "valid": self.valid,
            "topics": {"web_events": self.web.as_dict(), "purchase_events": self.purchases.as_dict()},
            "event_time_range": {"min": _iso(self.min_event_ms), "max": _iso(self.max_event_ms),
                                 "min_ms": self.min_event_ms, "max_ms": self.max_event_ms},
            "web_events": {
                "by_type": self.web_counts(),
                "sessions": len(self.sessions),
                "customers": sum(1 for c in self.customers.values() if c[0]),
            },
            "purchase_events": {
                "orders": orders,
                "by_status": dict(self.orders_by_status),
                "revenue": f"{sum(self.revenue_cents_by_status.values()) / 100:.2f}",
                "revenue_by_status": {s: f"{c / 100:.2f}" for s, c in self.revenue_cents_by_status.items()},
                "revenue_cents": sum(self.revenue_cents_by_status.values()),
                "items": sum(self.items_by_status.values()),
                "items_by_status": dict(self.items_by_status),
                "customers": sum(1 for c in self.customers.values() if c[1]),
            },
            "windows": {"web": len(self.web_windows), "orders": len(self.order_windows),
                        "late": len(self.late_windows)},
            "files": self.files,
        }

    def write(self, directory: Path) -> Path:
        """summary.json, web_windows.csv, order_windows.csv, late_windows.csv, customers.csv
        and, with the full ledger, sent.parquet (one row per message sent, in send order)."""
        directory.mkdir(parents=True, exist_ok=True)
        iso = _IsoCache()
        with (directory / "web_windows.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["window_start", "window_start_ms", "country", "device_type", *WEB_TYPES, "events",
                        "sessions", "unique_customers"])
            for (ws, country, device), agg in sorted(self.web_windows.items()):
                counts = agg[:_N]
                w.writerow([iso[ws], ws, country, device, *counts, sum(counts), len(agg[_N]), len(agg[_N + 1])])
        with (directory / "order_windows.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["window_start", "window_start_ms", "country", "payment_method", "orders", "revenue",
                        "items", "completed", "cancelled", "refunded", "completed_revenue"])
            for (ws, country, method), a in sorted(self.order_windows.items()):
                w.writerow([iso[ws], ws, country, method, a[0], f"{a[1] / 100:.2f}", a[2], a[3], a[4], a[5],
                            f"{a[6] / 100:.2f}"])
        with (directory / "late_windows.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["window_start", "window_start_ms", "source", "late_events"])
            for (ws, source), n in sorted(self.late_windows.items()):
                w.writerow([iso[ws], ws, source, n])
        with (directory / "customers.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["customer_id", "web_events", "orders", "revenue", "items", "first_event_time",
                        "last_event_time"])
            for cid, c in sorted(self.customers.items()):
                w.writerow([cid, c[0], c[1], f"{c[2] / 100:.2f}", c[3], _iso(c[4]), _iso(c[5])])
        self.files = {name: name for name in ("summary.json", "web_windows.csv", "order_windows.csv",
                                              "late_windows.csv", "customers.csv")}
        if self.detail:
            self._write_detail(directory / "sent.parquet")
            self.files["sent.parquet"] = "sent.parquet"
        (directory / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        return directory

    def _write_detail(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = list(zip(*self.rows)) if self.rows else [[] for _ in range(9)]
        table = pa.table({
            "seq": pa.array(range(len(self.rows)), pa.int64()),
            "topic": pa.array(cols[0], pa.string()),
            "key": pa.array(cols[1], pa.string()),
            "kind": pa.array(cols[2], pa.string()),
            "record_id": pa.array(cols[3], pa.string()),
            "type": pa.array(cols[4], pa.string()),
            "event_time_ms": pa.array(cols[5], pa.int64()),
            "late": pa.array(cols[6], pa.bool_()),
            "late_delay_ms": pa.array(cols[7], pa.int64()),
            "malformed_reason": pa.array(cols[8], pa.string()),
        })
        pq.write_table(table, path, compression="zstd")


class ImportLedger(EventLedger):
    """An import's ledger (`python -m simulators import`): the events and orders sent, as an events
    run's, plus the customers written and the rows rejected.

    Imported customer ids are the user's, not `<prefix><digits>`: the summary lists them
    (`customers.ids` for crm.customers, `event_customer_ids` for raw.*), and wait-for-pipeline scopes its
    counts by those lists instead of a prefix.
    """

    def __init__(self, run_id: str, config: dict[str, Any], web_topic: str, purchase_topic: str):
        super().__init__(run_id, config, web_topic, purchase_topic)
        self.customer_ids: set[str] = set()     # written to crm.customers
        self.rejected: dict[str, int] = {}      # "section: reason" -> rows
        self.rows_read: dict[str, int] = {}     # section -> data rows read
        self.report: Path | None = None         # the rejected rows (section, file, row, reason)
        self.not_in_crm: list[str] = []         # customers of the events/orders without a crm.customers row

    def summary(self) -> dict[str, Any]:
        s = super().summary()
        s["kind"] = "import"
        s["rows_read"] = dict(self.rows_read)
        s["rejected"] = sum(self.rejected.values())
        s["rejected_by_reason"] = dict(self.rejected)
        s["report"] = str(self.report) if self.report else None
        s["customers"] = {"final_rows": len(self.customer_ids), "ids": sorted(self.customer_ids)}
        s["event_customer_ids"] = sorted(self.customers)
        s["event_customers_not_in_crm"] = len(self.not_in_crm)
        return s

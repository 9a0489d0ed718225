"""The event simulator: sessions of web events and the purchases they lead to.

Record formats (the two topics' data contract). Times are **UTC epoch milliseconds (JSON integers)** in both
topics; every web event carries every field (null where it does not apply); amounts are JSON
numbers with at most two decimals.

web_events, key = customer_id::

    {"event_id": "<uuid>", "customer_id": "C0000042", "session_id": "<uuid>",
     "event_type": "add_to_cart", "page_url": "/cart", "product_id": "P00017", "search_query": null,
     "device_type": "mobile", "country": "DE", "utm_source": "google", "event_time": 1735689600123}

purchase_events, key = customer_id::

    {"order_id": "<uuid>", "customer_id": "C0000042", "session_id": "<uuid>", "order_time": 1735689601456,
     "items": [{"product_id": "P00017", "quantity": 2, "unit_price": 19.99}], "total_amount": 39.98,
     "currency": "USD", "payment_method": "card", "order_status": "completed", "shipping_country": "DE"}

Behaviour: a customer's sessions arrive as a Poisson process (their engagement x daily and weekly
seasonality x their lifecycle activity, see population.py). A session is login? -> landing
page_view -> browsing (page_view / search / product_view, add_to_cart after a product_view,
remove_from_cart) -> checkout_start -> checkout_success -> logout?; each checkout_success yields
one purchase in the same session, 0.3-2.5 s later. Records are emitted in event-time order
(a heap), so each customer's records are in order, except those deliberately sent late.

Modes: `backfill` runs a simulated clock from `start` over `days` as fast as `rate` allows;
`live` stamps records with the current time and starts sessions so that about `rate` records
per second flow. Determinism: the same config and seed give byte-identical records in backfill
mode (live mode's times follow the wall clock).
"""
from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from platform_common.contracts import PURCHASE_EVENTS_TOPIC, WEB_EVENTS_TOPIC
from simulators import catalog
from simulators.population import DAY_MS, Population, time_window
from simulators.rng import Picker, geometric, poisson, stream, uuid4_from

WEB_REQUIRED = ("event_id", "customer_id", "session_id", "event_type", "device_type", "country", "event_time")
ORDER_REQUIRED = ("order_id", "customer_id", "order_time", "items", "total_amount", "currency", "payment_method",
                  "order_status", "shipping_country")
WEB_MALFORMED = ("invalid_json", "missing_field", "wrong_type", "unknown_event_type")
ORDER_MALFORMED = ("invalid_json", "missing_field", "wrong_type", "unknown_order_status")
STREAMS = ("web", "purchases")
BACKFILL_SLICE_MS = 60_000
_WEB, _ORDER = 0, 1


@dataclass
class EventConfig:
    """Options of one event-simulator run (the CLI flags of `python -m simulators events`)."""
    mode: str = "backfill"               # backfill | live
    days: float = 120.0                  # backfill: simulated history length
    start: dt.datetime | None = None     # backfill: first simulated instant (default: midnight UTC - days)
    customers: int = 5000
    seed: int = 42
    rate: float | None = None            # messages/s; 0 = as fast as possible (backfill default);
                                         # live default 1000 (50 when only purchases are sent)
    duration: float | None = None        # stop after this many wall-clock seconds
    count: int | None = None             # stop after this many valid records (of the selected streams)
    streams: tuple[str, ...] = STREAMS   # which topics receive records (generation is the same)
    web_topic: str = WEB_EVENTS_TOPIC
    purchase_topic: str = PURCHASE_EVENTS_TOPIC
    late_rate: float = 0.0               # fraction of valid records sent late_delay_s after their event time
    late_delay_s: float = 300.0
    duplicate_rate: float = 0.0          # fraction of valid records re-sent verbatim right away
    malformed_rate: float = 0.0          # malformed records injected per valid record
    id_prefix: str = "C"
    ledger: str = "summary"              # none | summary | full (adds sent.parquet)
    ledger_dir: Path | None = None       # default DATA_DIR/simulator/ledger/<run_id>
    run_id: str | None = None
    quiet: bool = False
    write_ground_truth: bool = False     # also DATA_DIR/simulator/churn_ground_truth.csv (the customer
                                         # simulator writes it: it defines who is in crm.customers)

    def validate(self) -> None:
        if self.mode not in ("backfill", "live"):
            raise ValueError(f"mode must be backfill or live, not {self.mode!r}")
        for name in ("late_rate", "duplicate_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, not {value}")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.days <= 0:
            raise ValueError("days must be positive")
        if not self.streams or any(s not in STREAMS for s in self.streams):
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, not {self.streams}")
        if self.ledger not in ("none", "summary", "full"):
            raise ValueError(f"ledger must be none, summary or full, not {self.ledger!r}")
        if self.mode == "live" and self.effective_rate <= 0:
            raise ValueError("live mode needs a rate > 0 (records per second)")

    @property
    def effective_rate(self) -> float:
        if self.rate is not None:
            return float(self.rate)
        if self.mode == "live":
            return 1000.0 if "web" in self.streams else 50.0
        return 0.0

    def window(self) -> tuple[int, int]:
        return time_window(self.start, self.days)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = dt.datetime.fromtimestamp(self.window()[0] / 1000, dt.UTC).isoformat()
        d["rate"] = self.effective_rate
        d["streams"] = list(self.streams)
        d["ledger_dir"] = str(self.ledger_dir) if self.ledger_dir else None
        return d


class Generator:
    """Turns a population into time-ordered records; knows nothing about sinks or the clock's pace."""

    def __init__(self, population: Population, seed: int, id_prefix: str = "C"):
        self.customers = population.customers
        self.rng = stream(seed, "sessions")
        # event/session/order ids also depend on the customer id prefix: two populations with the same
        # seed (e.g. a test's and the demo's) must not send the same ids, which the job deduplicates
        # and the raw tables upsert by
        self.ids = stream(seed, f"ids:{id_prefix}")
        self.heap: list[tuple] = []   # (time_ms, seq, kind, record, key, total_cents, n_items)
        self.seq = 0
        self.sessions = 0
        self.drop_before = 0          # records before this time are not materialised (live warm-up)
        self.customer_picker = Picker(values=range(len(self.customers)),
                                      weights=[c.sessions_per_day for c in self.customers])
        self.sessions_per_ms = self.customer_picker.total / DAY_MS
        self.devices = Picker(catalog.DEVICES)
        self.utm = Picker(catalog.UTM_SOURCES)
        self.landing = Picker(catalog.LANDING_URLS)
        self.products = Picker(values=range(catalog.N_PRODUCTS), weights=catalog.PRODUCT_WEIGHTS)
        self.payment = Picker(catalog.PAYMENT_METHODS)
        self.status = Picker(catalog.ORDER_STATUSES)
        self.countries = Picker(catalog.COUNTRIES)

    # -- session arrivals ------------------------------------------------------------------------------
    @staticmethod
    def seasonality(t_ms: int) -> float:
        return catalog.HOURLY[(t_ms // 3_600_000) % 24] * catalog.WEEKLY[(t_ms // DAY_MS + 3) % 7]

    def spawn_backfill(self, t0: int, t1: int) -> None:
        """Sessions starting in [t0, t1): Poisson arrivals thinned by each customer's activity."""
        rng = self.rng
        n = poisson(rng, self.sessions_per_ms * (t1 - t0) * self.seasonality(t0))
        span = t1 - t0
        customers, pick = self.customers, self.customer_picker.index
        for _ in range(n):
            c = customers[pick(rng)]
            t = t0 + int(rng.random() * span)
            a = c.activity(t)
            if a >= 1.0 or (a > 0.0 and rng.random() < a):
                self.session(c, t)

    def spawn_live(self, t0: int, t1: int, sessions_per_ms: float) -> None:
        """Sessions starting in [t0, t1) at a target rate; inactive customers are redrawn."""
        rng = self.rng
        n = poisson(rng, sessions_per_ms * (t1 - t0))
        span = max(1, t1 - t0)
        customers, pick = self.customers, self.customer_picker.index
        for _ in range(n):
            t = t0 + int(rng.random() * span)
            for _attempt in range(50):
                c = customers[pick(rng)]
                a = c.activity(t)
                if a >= 1.0 or (a > 0.0 and rng.random() < a):
                    self.session(c, t)
                    break

    # -- one session -----------------------------------------------------------------------------------
    def session(self, c, t: int) -> None:
        rng, r = self.rng, self.rng.random
        ids = self.ids
        self.sessions += 1
        sid = uuid4_from(ids)
        device = c.device if r() < 0.85 else self.devices.pick(rng)
        utm = self.utm.pick(rng)
        pick_product = self.products.index
        expo = rng.expovariate
        gap = 1.0 / catalog.MEAN_GAP_MS
        ev: list[tuple] = []          # (t, event_type, page_url, product_id, search_query)
        add = ev.append
        logged_in = r() < catalog.P_LOGIN
        if logged_in:
            add((t, "login", "/login", None, None))
            t += 800 + int(expo(gap) * 0.3)
        add((t, "page_view", self.landing.pick(rng), None, None))
        cart: dict[int, int] = {}
        p_add = catalog.P_ADD_TO_CART * c.conversion
        for _ in range(geometric(rng, catalog.MEAN_BROWSE_STEPS)):
            t += 500 + int(expo(gap))
            x = r()
            if x < catalog.P_SEARCH:
                q = rng.randrange(len(catalog.SEARCH_TERMS))
                add((t, "search", catalog.SEARCH_URLS[q], None, catalog.SEARCH_TERMS[q]))
                if r() < 0.8:
                    t += 500 + int(expo(gap))
                    p = pick_product(rng)
                    add((t, "product_view", catalog.PRODUCT_URLS[p], catalog.PRODUCT_IDS[p], None))
                    if r() < p_add:
                        t += 500 + int(expo(gap) * 0.5)
                        cart[p] = cart.get(p, 0) + (1 if r() < 0.8 else 2 if r() < 0.75 else 3)
                        add((t, "add_to_cart", "/cart", catalog.PRODUCT_IDS[p], None))
            elif x < catalog.P_SEARCH + catalog.P_CATEGORY:
                add((t, "page_view", catalog.CATEGORY_URLS[rng.randrange(len(catalog.CATEGORY_URLS))], None, None))
            else:
                p = pick_product(rng)
                add((t, "product_view", catalog.PRODUCT_URLS[p], catalog.PRODUCT_IDS[p], None))
                if r() < p_add:
                    t += 500 + int(expo(gap) * 0.5)
                    cart[p] = cart.get(p, 0) + (1 if r() < 0.8 else 2 if r() < 0.75 else 3)
                    add((t, "add_to_cart", "/cart", catalog.PRODUCT_IDS[p], None))
            if cart and r() < catalog.P_REMOVE_FROM_CART:
                p = list(cart)[rng.randrange(len(cart))]
                del cart[p]
                t += 500 + int(expo(gap) * 0.5)
                add((t, "remove_from_cart", "/cart", catalog.PRODUCT_IDS[p], None))
        order = None
        if cart and r() < catalog.P_CHECKOUT_START:
            t += 1000 + int(expo(gap))
            add((t, "checkout_start", "/checkout", None, None))
            if r() < catalog.P_CHECKOUT_SUCCESS:
                t += 5000 + int(expo(gap) * 2)
                add((t, "checkout_success", "/checkout/success", None, None))
                order = (t + 300 + rng.randrange(2200), cart)
        if logged_in and r() < catalog.P_LOGOUT:
            t += 500 + int(expo(gap))
            add((t, "logout", "/logout", None, None))

        cid, key, country = c.customer_id, c.key, c.country
        heap, push = self.heap, heapq.heappush
        seq = self.seq
        drop_before = self.drop_before
        for et, etype, url, pid, q in ev:
            if et < drop_before:     # live warm-up: the part of a running session before the start
                continue
            seq += 1
            push(heap, (et, seq, _WEB, {
                "event_id": uuid4_from(ids), "customer_id": cid, "session_id": sid, "event_type": etype,
                "page_url": url, "product_id": pid, "search_query": q, "device_type": device,
                "country": country, "utm_source": utm, "event_time": et}, key, 0, 0))
        if order is not None and order[0] >= drop_before:
            ot, items = order
            prices = catalog.PRODUCT_PRICE_CENTS
            total = sum(prices[p] * qty for p, qty in items.items())
            n_items = sum(items.values())
            seq += 1
            push(heap, (ot, seq, _ORDER, {
                "order_id": uuid4_from(ids), "customer_id": cid, "session_id": sid, "order_time": ot,
                "items": [{"product_id": catalog.PRODUCT_IDS[p], "quantity": qty, "unit_price": prices[p] / 100}
                          for p, qty in items.items()],
                "total_amount": total / 100, "currency": catalog.CURRENCY,
                "payment_method": self.payment.pick(rng), "order_status": self.status.pick(rng),
                "shipping_country": country if r() < 0.97 else self.countries.pick(rng)}, key, total, n_items))
        self.seq = seq


def mean_records_per_session(population: Population, seed: int, streams: tuple[str, ...], n: int = 3000) -> float:
    """Monte-Carlo estimate (with its own random streams) of records per session, for live pacing."""
    g = Generator(population, seed ^ 0x5EED)
    t = population.end_ms
    for _ in range(n):
        c = population.customers[g.customer_picker.index(g.rng)]
        g.session(c, t)
    web = sum(1 for e in g.heap if e[2] == _WEB)
    orders = len(g.heap) - web
    return max(0.01, ((web if "web" in streams else 0) + (orders if "purchases" in streams else 0)) / n)


def malformed_record(rng, is_web: bool, rec: dict) -> tuple[str, bytes, str | None]:
    """A broken copy of `rec` under a fresh id: (reason, bytes, record id or None)."""
    reasons = WEB_MALFORMED if is_web else ORDER_MALFORMED
    reason = reasons[rng.randrange(len(reasons))]
    m = dict(rec)
    id_field = "event_id" if is_web else "order_id"
    m[id_field] = uuid4_from(rng)
    if reason == "invalid_json":
        raw = orjson.dumps(m)
        return reason, raw[: 10 + rng.randrange(len(raw) - 12)], m[id_field]
    if reason == "missing_field":
        required = WEB_REQUIRED if is_web else ORDER_REQUIRED
        del m[required[rng.randrange(len(required))]]
    elif reason == "wrong_type":
        if is_web:
            # an ISO string where epoch milliseconds (a number) are required
            m["event_time"] = dt.datetime.fromtimestamp(m["event_time"] / 1000, dt.UTC).isoformat()
        elif rng.random() < 0.5:
            m["total_amount"] = f"{m['total_amount']:.2f}"           # a string, not a number
        else:
            m["items"] = [{**m["items"][0], "quantity": "two"}]      # a string quantity
    elif reason == "unknown_event_type":
        m["event_type"] = "teleport"
    else:  # unknown_order_status
        m["order_status"] = "lost_in_transit"
    return reason, orjson.dumps(m), m.get(id_field)

"""The simulators without services: determinism, record schemas, funnel, lifecycle, faults, ledger."""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import Counter, defaultdict

import orjson
import pyarrow.parquet as pq
import pytest

from simulators import run
from simulators.customers import CustomerLedger, _row, timeline
from simulators.ledger import WEB_TYPES
from simulators.population import DAY_MS
from simulators.population import build as build_population

pytestmark = pytest.mark.unit

START = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)   # a Monday
START_MS = int(START.timestamp() * 1000)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WEB_FIELDS = ["event_id", "customer_id", "session_id", "event_type", "page_url", "product_id", "search_query",
              "device_type", "country", "utm_source", "event_time"]
ORDER_FIELDS = ["order_id", "customer_id", "session_id", "order_time", "items", "total_amount", "currency",
                "payment_method", "order_status", "shipping_country"]
DEVICES = {"mobile", "desktop", "tablet"}
STATUSES = {"completed", "cancelled", "refunded"}
PAYMENTS = {"card", "paypal", "apple_pay", "google_pay", "bank_transfer"}


def simulate(**kw):
    args = dict(start=START, days=14, customers=800, seed=11, sink="memory", quiet=True, ledger="none",
                write_ground_truth=False)
    args.update(kw)
    return run(**args)


@pytest.fixture(scope="module")
def clean():
    """14 simulated days, no faults."""
    return simulate()


@pytest.fixture(scope="module")
def faulty():
    return simulate(days=10, late_rate=0.02, late_delay_s=120, duplicate_rate=0.03, malformed_rate=0.01)


def decoded(ledger):
    web, orders = [], []
    for topic, key, value in ledger.sink.messages:
        rec = orjson.loads(value)
        (web if topic == "web_events" else orders).append((key, rec))
    return web, orders


def classify(topic: str, value: bytes) -> str:
    """An independent validator: 'valid' or the reason the record is malformed."""
    try:
        rec = json.loads(value)
    except ValueError:
        return "invalid_json"
    fields = WEB_FIELDS if topic == "web_events" else ORDER_FIELDS
    if set(rec) != set(fields):
        return "missing_field"
    if topic == "web_events":
        if not isinstance(rec["event_time"], int):
            return "wrong_type"
        if rec["event_type"] not in WEB_TYPES:
            return "unknown_event_type"
    else:
        if not isinstance(rec["total_amount"], (int, float)) or any(
                not isinstance(i["quantity"], int) for i in rec["items"]):
            return "wrong_type"
        if rec["order_status"] not in STATUSES:
            return "unknown_order_status"
    return "valid"


def test_same_seed_gives_byte_identical_records_and_another_seed_does_not(clean):
    again = simulate()
    assert again.sink.messages == clean.sink.messages
    assert len(clean.sink.messages) == clean.messages > 10_000
    other = simulate(seed=12)
    assert other.sink.messages[:100] != clean.sink.messages[:100]


def test_faults_are_deterministic_and_leave_the_valid_records_unchanged(faulty):
    again = simulate(days=10, late_rate=0.02, late_delay_s=120, duplicate_rate=0.03, malformed_rate=0.01)
    assert again.sink.messages == faulty.sink.messages
    base = simulate(days=10)
    seen, valid = set(), []
    for topic, key, value in faulty.sink.messages:
        if classify(topic, value) == "valid" and value not in seen:
            seen.add(value)
            valid.append((topic, key, value))
    # same valid records; only late ones moved
    assert sorted(valid) == sorted(base.sink.messages)


def test_web_event_schema(clean):
    web, _ = decoded(clean)
    end_ms = START_MS + 14 * DAY_MS
    customers = {c.customer_id: c for c in clean.population.customers}
    types = Counter()
    for key, ev in web:
        assert list(ev) == WEB_FIELDS
        assert UUID4.match(ev["event_id"]) and UUID4.match(ev["session_id"])
        assert key == ev["customer_id"].encode() and ev["customer_id"] in customers
        assert ev["event_type"] in WEB_TYPES
        assert isinstance(ev["page_url"], str) and ev["page_url"].startswith("/")
        if ev["event_type"] in ("product_view", "add_to_cart", "remove_from_cart"):
            assert re.fullmatch(r"P\d{5}", ev["product_id"])
        else:
            assert ev["product_id"] is None
        if ev["event_type"] == "search":
            assert isinstance(ev["search_query"], str) and ev["search_query"]
            assert ev["page_url"] == "/search?q=" + ev["search_query"].replace(" ", "+")
        else:
            assert ev["search_query"] is None
        assert ev["device_type"] in DEVICES
        assert ev["country"] == customers[ev["customer_id"]].country
        assert ev["utm_source"] is None or isinstance(ev["utm_source"], str)
        assert type(ev["event_time"]) is int and START_MS <= ev["event_time"] < end_ms
        types[ev["event_type"]] += 1
    assert set(types) == set(WEB_TYPES)
    assert dict(types) == clean.web_counts()
    assert len({ev["event_id"] for _, ev in web}) == len(web)


def test_purchase_event_schema(clean):
    _, orders = decoded(clean)
    statuses, methods = Counter(), Counter()
    assert len(orders) == clean.purchases.valid > 100
    for key, o in orders:
        assert list(o) == ORDER_FIELDS
        assert UUID4.match(o["order_id"]) and UUID4.match(o["session_id"])
        assert key == o["customer_id"].encode()
        assert type(o["order_time"]) is int
        assert o["items"] and all(list(i) == ["product_id", "quantity", "unit_price"] for i in o["items"])
        cents = 0
        for item in o["items"]:
            assert re.fullmatch(r"P\d{5}", item["product_id"])
            assert type(item["quantity"]) is int and item["quantity"] >= 1
            assert isinstance(item["unit_price"], float) and round(item["unit_price"], 2) == item["unit_price"] > 0
            cents += item["quantity"] * round(item["unit_price"] * 100)
        assert o["total_amount"] == round(cents / 100, 2)
        assert o["currency"] == "USD"
        assert re.fullmatch(r"[A-Z]{2}", o["shipping_country"])
        statuses[o["order_status"]] += 1
        methods[o["payment_method"]] += 1
    assert set(statuses) == STATUSES and set(methods) == PAYMENTS
    assert statuses["completed"] / len(orders) > 0.85
    assert dict(statuses) == clean.orders_by_status


def test_sessions_follow_the_funnel(clean):
    web, orders = decoded(clean)
    sessions = defaultdict(list)
    for _, ev in web:
        sessions[ev["session_id"]].append(ev)
    assert len(sessions) == len(clean.sessions)
    assert sum(len(s) for s in sessions.values()) / len(sessions) > 4   # several events per session
    successes = {}
    for sid, evs in sessions.items():
        assert len({(e["customer_id"], e["device_type"], e["country"], e["utm_source"]) for e in evs}) == 1
        times = [e["event_time"] for e in evs]
        assert times == sorted(times)
        types = [e["event_type"] for e in evs]
        if "login" in types:
            assert types.index("login") == 0
        if "logout" in types:
            assert types.index("logout") == len(types) - 1
        viewed, cart = set(), Counter()
        for e in evs:
            t = e["event_type"]
            if t == "product_view":
                viewed.add(e["product_id"])
            elif t == "add_to_cart":
                assert e["product_id"] in viewed
                cart[e["product_id"]] += 1
            elif t == "remove_from_cart":
                assert cart[e["product_id"]] > 0
                cart[e["product_id"]] = 0
            elif t == "checkout_start":
                assert +cart, "checkout with an empty cart"
        assert types.count("checkout_start") <= 1 and types.count("checkout_success") <= 1
        if "checkout_success" in types:
            assert types.index("checkout_start") < types.index("checkout_success")
            successes[sid] = evs[types.index("checkout_success")]
    # every purchase belongs to a checkout_success session of the same customer, shortly after it
    by_session = {o["session_id"]: o for _, o in orders}
    assert len(by_session) == len(orders)
    for sid, o in by_session.items():
        s = successes[sid]
        assert o["customer_id"] == s["customer_id"]
        assert 300 <= o["order_time"] - s["event_time"] < 2500
    end_ms = START_MS + 14 * DAY_MS
    missing = [sid for sid, s in successes.items() if sid not in by_session]
    assert all(successes[sid]["event_time"] + 2500 > end_ms for sid in missing)   # cut by the window end
    # realistic drop-off down the funnel
    c = clean.web_counts()
    assert c["product_view"] > c["add_to_cart"] > c["checkout_start"] > c["checkout_success"] > 0
    assert 0.01 < c["checkout_success"] / len(sessions) < 0.10


def test_records_are_in_event_time_order_per_customer(clean):
    last = {}
    for topic, key, value in clean.sink.messages:
        rec = orjson.loads(value)
        t = rec["event_time"] if topic == "web_events" else rec["order_time"]
        assert t >= last.get(key, 0)
        last[key] = t


def test_churned_customers_fade_and_then_stop():
    ledger = simulate(days=60, customers=600, seed=5)
    pop = ledger.population
    churners = {c.customer_id: c for c in pop.customers if c.churn_ms is not None and c.churn_ms <= pop.end_ms}
    assert 0.12 < len(churners) / len(pop.customers) < 0.35
    rows = pop.ground_truth_rows()
    assert sum(1 for _, churned, _ in rows if churned) == len(churners)
    before_decay = in_decay = 0
    for topic, _key, value in ledger.sink.messages:
        rec = orjson.loads(value)
        t = rec["event_time"] if topic == "web_events" else rec["order_time"]
        c = churners.get(rec["customer_id"])
        if c is None:
            continue
        assert t < c.churn_ms, f"{c.customer_id} active after its churn date"
        assert t >= c.signup_ms
        if c.decay_ms - 7 * DAY_MS <= t < c.decay_ms:
            before_decay += 1
        elif c.churn_ms - 7 * DAY_MS <= t:
            in_decay += 1
    assert in_decay < 0.6 * before_decay   # the last week before churning is much quieter


def test_seasonality_weekends_and_evenings_are_busier(clean):
    hours, days = Counter(), Counter()
    web, _ = decoded(clean)
    for _, ev in web:
        t = dt.datetime.fromtimestamp(ev["event_time"] / 1000, dt.UTC)
        hours[t.hour] += 1
        days[t.weekday()] += 1
    assert hours[19] > 3 * hours[3]
    assert days[5] + days[6] > days[1] + days[2]


def test_fault_counts_match_the_ledger_and_the_rates(faulty):
    lg = faulty
    seen = set()
    counts = {"web_events": Counter(), "purchase_events": Counter()}
    stream_max = 0
    for topic, _key, value in lg.sink.messages:
        kind = classify(topic, value)
        if kind != "valid":
            counts[topic]["malformed"] += 1
            counts[topic][kind] += 1
            continue
        if value in seen:
            counts[topic]["duplicates"] += 1
            continue
        seen.add(value)
        counts[topic]["valid"] += 1
        rec = orjson.loads(value)
        t = rec["event_time"] if topic == "web_events" else rec["order_time"]
        if t < stream_max:
            counts[topic]["late"] += 1
        stream_max = max(stream_max, t)
    for topic, tc in (("web_events", lg.web), ("purchase_events", lg.purchases)):
        c = counts[topic]
        assert c["valid"] == tc.valid
        assert c["duplicates"] == tc.duplicates
        assert c["malformed"] == tc.malformed
        assert c["late"] == tc.late
        assert {k: v for k, v in c.items() if k not in ("valid", "duplicates", "malformed", "late")} == \
            tc.malformed_by_reason
        assert tc.messages == tc.valid + tc.duplicates + tc.malformed
    assert set(lg.web.malformed_by_reason) == {"invalid_json", "missing_field", "wrong_type", "unknown_event_type"}
    n = lg.valid
    for observed, rate in ((lg.web.late + lg.purchases.late, 0.02),
                           (lg.web.duplicates + lg.purchases.duplicates, 0.03),
                           (lg.web.malformed + lg.purchases.malformed, 0.01)):
        sigma = (n * rate * (1 - rate)) ** 0.5
        assert abs(observed - n * rate) < 5 * sigma, (observed, n * rate)
    assert len(lg.sink.messages) == lg.messages


def test_late_records_arrive_the_configured_delay_behind_the_stream(tmp_path):
    lg = simulate(days=3, late_rate=0.05, late_delay_s=120, ledger="full", ledger_dir=tmp_path)
    detail = pq.read_table(tmp_path / "sent.parquet").to_pylist()
    late = [r for r in detail if r["late"]]
    assert len(late) == lg.web.late + lg.purchases.late > 100
    end_ms = START_MS + 3 * DAY_MS
    assert all(r["late_delay_ms"] >= 120_000 or r["event_time_ms"] + 120_000 > end_ms for r in late)


def test_count_limits_valid_records_and_streams_filter_topics(clean):
    limited = simulate(count=1234)
    assert limited.valid == 1234 and len(limited.sink.messages) == 1234
    assert limited.sink.messages == clean.sink.messages[:1234]
    only = simulate(streams=("purchases",))
    assert {t for t, _, _ in only.sink.messages} == {"purchase_events"}
    assert only.sink.messages == [m for m in clean.sink.messages if m[0] == "purchase_events"]
    assert only.web.messages == 0 and only.purchases.valid == clean.purchases.valid


def test_ledger_aggregates_and_files_reconcile(tmp_path):
    lg = simulate(days=5, duplicate_rate=0.01, malformed_rate=0.005, late_rate=0.01, ledger="full",
                  ledger_dir=tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {"summary.json", "web_windows.csv", "order_windows.csv", "late_windows.csv", "customers.csv",
                     "sent.parquet", "churn_ground_truth.csv"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["messages"] == len(lg.sink.messages)
    assert summary["web_events"]["by_type"] == lg.web_counts()
    # recompute every aggregate from the valid messages
    web_windows, order_windows, per_customer = Counter(), defaultdict(lambda: [0, 0, 0]), Counter()
    seen, revenue = set(), 0
    for topic, _key, value in lg.sink.messages:
        if classify(topic, value) != "valid" or value in seen:
            continue
        seen.add(value)
        rec = orjson.loads(value)
        if topic == "web_events":
            w = rec["event_time"] // 60000 * 60000
            web_windows[(w, rec["country"], rec["device_type"], rec["event_type"])] += 1
            per_customer[rec["customer_id"]] += 1
        else:
            w = rec["order_time"] // 60000 * 60000
            cents = round(rec["total_amount"] * 100)
            agg = order_windows[(w, rec["shipping_country"], rec["payment_method"])]
            agg[0] += 1
            agg[1] += cents
            agg[2] += sum(i["quantity"] for i in rec["items"])
            revenue += cents
    with (tmp_path / "web_windows.csv").open() as fh:
        from_file = Counter()
        for row in csv.DictReader(fh):
            for t in WEB_TYPES:
                if int(row[t]):
                    from_file[(int(row["window_start_ms"]), row["country"], row["device_type"], t)] = int(row[t])
    assert from_file == web_windows
    with (tmp_path / "order_windows.csv").open() as fh:
        rows = {(int(r["window_start_ms"]), r["country"], r["payment_method"]):
                [int(r["orders"]), round(float(r["revenue"]) * 100), int(r["items"])] for r in csv.DictReader(fh)}
    assert rows == dict(order_windows)
    assert summary["purchase_events"]["revenue_cents"] == revenue
    with (tmp_path / "customers.csv").open() as fh:
        assert {r["customer_id"]: int(r["web_events"]) for r in csv.DictReader(fh) if int(r["web_events"])} == \
            dict(per_customer)
    detail = pq.read_table(tmp_path / "sent.parquet")
    assert detail.num_rows == lg.messages
    kinds = Counter(detail.column("kind").to_pylist())
    assert kinds == {"valid": lg.valid, "duplicate": lg.web.duplicates + lg.purchases.duplicates,
                     "malformed": lg.web.malformed + lg.purchases.malformed}
    assert detail.column("key").to_pylist() == [k.decode() for _, k, _ in lg.sink.messages]


def test_malformed_examples_are_broken_in_the_stated_way():
    lg = simulate(days=7, malformed_rate=0.3, ledger="none")
    reasons = Counter(classify(t, v) for t, _, v in lg.sink.messages)
    assert reasons["valid"] == lg.valid
    expected = Counter(lg.web.malformed_by_reason) + Counter(lg.purchases.malformed_by_reason)
    assert {k: v for k, v in reasons.items() if k != "valid"} == dict(expected)
    assert set(lg.purchases.malformed_by_reason) == {"invalid_json", "missing_field", "wrong_type",
                                                     "unknown_order_status"}


def test_live_mode_stamps_current_time_at_the_requested_rate():
    before = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    lg = simulate(mode="live", rate=1500, duration=3, start=None)
    after = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    times = []
    for topic, _, value in lg.sink.messages:
        rec = orjson.loads(value)
        times.append(rec["event_time"] if topic == "web_events" else rec["order_time"])
    assert before <= min(times) and max(times) <= after
    assert 0.7 * 4500 < lg.messages < 1.3 * 4500


class _VirtualClock:
    """Stands in for the runner's `time`: the clock moves only by sleeps, a microsecond per reading,
    and SPAWN_COST per session spawned, so a test sees the same timings on an idle or a loaded machine."""
    SPAWN_COST = 13e-6           # seconds per spawned session, as measured here (150k sessions: ~2 s)

    def __init__(self):
        self.now = 1_800_000_000.0

    def time(self) -> float:
        self.now += 1e-6
        return self.now

    perf_counter = time

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


class _TimedSink:
    """Keeps each web record's event time and the (virtual) time it was produced at."""
    def __init__(self, clock: _VirtualClock):
        self.clock = clock
        self.sent: list[tuple[float, int]] = []

    def produce(self, topic, key, value):
        if topic == "web_events":
            self.sent.append((self.clock.now * 1000, orjson.loads(value)["event_time"]))

    def flush(self, timeout=None):
        return 0


def test_live_mode_sends_on_time_from_its_first_record(monkeypatch):
    """At 5,000/s the warm-up spawns ~150k running sessions, which takes seconds; their records of
    that time used to go out that far behind their event times (2.2 s measured, on every start)."""
    from simulators import runner
    from simulators.events import Generator

    clock = _VirtualClock()
    spawn = Generator.spawn_live

    def costly_spawn(gen, t0, t1, sessions_per_ms):
        before = gen.sessions
        spawn(gen, t0, t1, sessions_per_ms)
        clock.sleep((gen.sessions - before) * clock.SPAWN_COST)

    monkeypatch.setattr(runner, "time", clock)
    monkeypatch.setattr(Generator, "spawn_live", costly_spawn)
    sink = _TimedSink(clock)
    simulate(mode="live", rate=5000, duration=2, start=None, customers=20_000, sink=sink)
    assert len(sink.sent) > 5000
    lateness_ms = [sent_ms - event_ms for sent_ms, event_ms in sink.sent]
    # the loop polls every 5 ms; with one catch-up the first records went out 18 ms late, with none 2 s;
    # and no record goes out before its event time (sent up to the current millisecond)
    assert min(lateness_ms) > -1 and max(lateness_ms) < 10


def test_population_and_customer_timeline_are_deterministic_and_consistent():
    start, end = START_MS, START_MS + 90 * DAY_MS
    pop = build_population(3, 3000, start, end)
    assert [c.email for c in build_population(3, 3000, start, end).customers] == [c.email for c in pop.customers]
    changes = timeline(pop)
    assert changes == timeline(build_population(3, 3000, start, end))
    assert [c.t_ms for c in changes] == sorted(c.t_ms for c in changes)
    ops = Counter(c.op for c in changes)
    assert ops["insert"] == 3000 and ops["update"] > 300 and 5 < ops["delete"] < 200
    ledger = CustomerLedger("t", {}, pop)
    by_id = pop.by_id
    for ch in changes:
        ledger.apply(ch, _row(by_id[ch.customer_id], ch.t_ms) if ch.op == "insert" else None)
        if ch.op == "update":
            assert ch.old != ch.new
    assert len(ledger.final) == 3000 - ops["delete"]
    churned = {cid for cid, churned, _ in pop.ground_truth_rows() if churned}
    assert len(ledger.deleted & churned) > len(ledger.deleted) / 2   # deletions are mostly churners

"""The Flink streaming job against the real stack: events produced into Kafka come out in
PostgreSQL (raw rows, exact 1-minute aggregates once their windows close, late events) and bad records in the
dead-letter topic with reason and source offset; a killed TaskManager loses and duplicates nothing.

Every run uses its own ids, device_type and payment_method, so other data (simulators, earlier
runs) cannot change the rows asserted here. Semantics: flink_jobs/pipeline.py.
"""
from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from flink_jobs import deploy
from platform_common import flink_rest
from stack.supervisor import Supervisor
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

WAIT = 120


@pytest.fixture(scope="module")
def job(stack_up):
    deploy.ensure_job(stack_up)
    assert flink_rest.running_job(stack_up)
    return stack_up


@pytest.fixture
def pg(stack_up):
    with psycopg.connect(stack_up.postgres_dsn(stack_up.postgres_bi_user, stack_up.postgres_bi_password),
                         autocommit=True) as conn:
        yield conn


class Sender:
    """Produces JSON records and remembers where each landed (partition, offset) and when."""

    def __init__(self, settings):
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 5})
        self.delivered: dict[str, tuple[int, int]] = {}
        self.sent_at: dict[str, float] = {}

    def send(self, topic: str, key: str, value, tag: str) -> None:
        payload = value if isinstance(value, str) else json.dumps(value)

        def done(err, msg, tag=tag):
            assert err is None, err
            self.delivered.setdefault(tag, (msg.partition(), msg.offset()))
        self.sent_at.setdefault(tag, time.time())
        self.producer.produce(topic, payload.encode(), key.encode(), on_delivery=done)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def web_event(run: str, n: int, ts_ms: int, event_type: str, session: str, customer: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "customer_id": customer, "session_id": session, "event_type": event_type,
            "page_url": f"/it/{n}", "product_id": "P00001" if event_type in ("product_view", "add_to_cart") else None,
            "search_query": None, "device_type": f"it-{run}", "country": "DE", "utm_source": None,
            "event_time": ts_ms}


def minute(ts_ms: int) -> datetime:
    t = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return t.replace(second=0, microsecond=0)


def test_raw_rows_aggregates_late_events_and_dead_letters(job, pg):
    settings = job
    run = uuid.uuid4().hex[:10]
    sender = Sender(settings)
    now = int(time.time() * 1000) - 2000
    sessions = [f"s-{run}-{i}" for i in range(3)]
    customers = [f"it-{run}-{i}" for i in range(3)]
    kinds = ["page_view", "page_view", "product_view", "add_to_cart", "checkout_start", "search", "page_view"]
    events = [web_event(run, i, now + i * 10, kind, sessions[i % 3], customers[i % 2])
              for i, kind in enumerate(kinds)]
    for i, e in enumerate(events):
        sender.send("web_events", e["customer_id"], e, f"web{i}")
    sender.send("web_events", events[0]["customer_id"], events[0], "web0-duplicate")   # same bytes again
    orders = [
        {"order_id": str(uuid.uuid4()), "customer_id": customers[0], "session_id": sessions[0], "order_time": now + 100,
         "items": [{"product_id": "P00001", "quantity": 2, "unit_price": 10.25},
                   {"product_id": "P00002", "quantity": 1, "unit_price": 5.00}],
         "total_amount": 25.50, "currency": "USD", "payment_method": f"it-{run}", "order_status": "completed",
         "shipping_country": "DE"},
        {"order_id": str(uuid.uuid4()), "customer_id": customers[1], "session_id": sessions[1], "order_time": now + 200,
         "items": [{"product_id": "P00003", "quantity": 3, "unit_price": 3.33}],
         "total_amount": 9.99, "currency": "USD", "payment_method": f"it-{run}", "order_status": "completed",
         "shipping_country": "DE"},
        {"order_id": str(uuid.uuid4()), "customer_id": customers[1], "session_id": None, "order_time": now + 300,
         "items": [{"product_id": "P00004", "quantity": 1, "unit_price": 99.00}],
         "total_amount": 99.00, "currency": "USD", "payment_method": f"it-{run}", "order_status": "cancelled",
         "shipping_country": "DE"},
    ]
    for i, o in enumerate(orders):
        sender.send("purchase_events", o["customer_id"], o, f"order{i}")
    sender.send("purchase_events", orders[0]["customer_id"], orders[0], "order0-duplicate")
    bad_json = '{"event_id": "' + run + '", "customer_id": '   # truncated
    sender.send("web_events", customers[0], bad_json, "bad-json")
    bad_status = {**orders[0], "order_id": str(uuid.uuid4()), "order_status": "lost_in_transit"}
    sender.send("purchase_events", customers[0], bad_status, "bad-status")
    bad_type = {**web_event(run, 99, now, "page_view", sessions[0], customers[0]),
                "event_time": "2026-01-06T00:30:37.215000+00:00"}   # the simulators' wrong_type record
    sender.send("web_events", customers[0], bad_type, "bad-type")
    sender.flush()

    # raw rows: each event once, with the partition/offset of its first copy
    def raw_web():
        return {str(r[0]): r[1:] for r in pg.execute(
            "SELECT event_id, customer_id, session_id, event_type, device_type, country, event_time, kafka_partition, "
            "kafka_offset FROM raw.web_events WHERE device_type = %s", (f"it-{run}",))}
    expected_raw = {e["event_id"]: (e["customer_id"], e["session_id"], e["event_type"], e["device_type"], "DE",
                                    datetime.fromtimestamp(e["event_time"] / 1000, UTC),
                                    *sender.delivered[f"web{i}"]) for i, e in enumerate(events)}
    assert wait_for(raw_web, expected_raw) == expected_raw
    latency = max(time.time() - sender.sent_at[f"web{i}"] for i in range(len(events)))
    print(f"\nproduce -> raw row in PostgreSQL: {latency:.2f}s (slowest of {len(events)} events, incl. polling)")

    def raw_orders():
        return {str(r[0]): r[1:] for r in pg.execute(
            "SELECT order_id, order_status, item_count, total_amount, items, kafka_partition, kafka_offset "
            "FROM raw.purchase_events WHERE payment_method = %s", (f"it-{run}",))}
    expected_orders = {o["order_id"]: (o["order_status"], sum(i["quantity"] for i in o["items"]),
                                       Decimal(str(o["total_amount"])).quantize(Decimal("0.01")), o["items"],
                                       *sender.delivered[f"order{i}"]) for i, o in enumerate(orders)}
    assert wait_for(raw_orders, expected_orders) == expected_orders

    # 1-minute web metrics, by (window, country, device_type)
    expected_web = defaultdict(lambda: [0, 0, 0, 0, set(), set()])
    for e in events:
        row = expected_web[minute(e["event_time"])]
        for idx, kind in enumerate(("page_view", "product_view", "add_to_cart", "checkout_start")):
            row[idx] += e["event_type"] == kind
        row[4].add(e["session_id"])
        row[5].add(e["customer_id"])
    expected_web = {w: (w + timedelta(minutes=1), *v[:4], len(v[4]), len(v[5])) for w, v in expected_web.items()}

    def web_metrics():
        return {r[0]: r[1:] for r in pg.execute(
            "SELECT window_start, window_end, page_views, product_views, add_to_carts, checkouts, sessions, "
            "unique_customers FROM realtime.web_metrics_1m WHERE device_type = %s AND country = 'DE'", (f"it-{run}",))}
    assert wait_for(web_metrics, expected_web) == expected_web

    # order metrics: completed orders only
    completed = [o for o in orders if o["order_status"] == "completed"]
    expected_om = {}
    for w in {minute(o["order_time"]) for o in completed}:
        these = [o for o in completed if minute(o["order_time"]) == w]
        revenue = sum(Decimal(str(o["total_amount"])) for o in these).quantize(Decimal("0.01"))
        expected_om[w] = (len(these), revenue, sum(i["quantity"] for o in these for i in o["items"]),
                          (revenue / len(these)).quantize(Decimal("0.01"), ROUND_HALF_UP))

    def order_metrics():
        return {r[0]: r[1:] for r in pg.execute(
            "SELECT window_start, orders, revenue, items, avg_order_value FROM realtime.order_metrics_1m "
            "WHERE payment_method = %s AND country = 'DE'", (f"it-{run}",))}
    assert wait_for(order_metrics, expected_om) == expected_om

    # active sessions (5-minute windows sliding by 1 minute): a window's row is written once it closes,
    # 35 s after its end; the two earliest-closing windows that hold our minutes are exact against raw
    # (every window's slicing is asserted on bounded input in flink_jobs/tests)
    for w in {minute(e["event_time"]) for e in events}:
        for k in (4, 3):
            start = w - timedelta(minutes=k)

            def active(start=start):
                row = pg.execute("SELECT active_sessions FROM realtime.active_sessions WHERE window_start = %s",
                                 (start,)).fetchone()
                exact = pg.execute("SELECT count(DISTINCT session_id) FROM raw.web_events WHERE event_time >= %s "
                                   "AND event_time < %s + interval '5 minutes'", (start, start)).fetchone()[0]
                return row and row[0] == exact and row[0] >= len(sessions)
            assert wait_for(active, True, timeout=240), f"active_sessions for {start}"

    # a late event (its window closed long ago): raw row, counted in late_events_1m, no aggregate
    late_ts = int(datetime(2001, 1, 1, tzinfo=UTC).timestamp() * 1000) + int(run[:6], 16) % 525_600 * 60_000
    late = web_event(run, 100, late_ts + 1234, "page_view", sessions[0], customers[0])
    sender.send("web_events", late["customer_id"], late, "late")
    sender.flush()

    def late_count():
        row = pg.execute("SELECT late_events FROM realtime.late_events_1m WHERE window_start = %s AND source = "
                         "'web_events'", (minute(late_ts),)).fetchone()
        return row and row[0]
    assert wait_for(late_count, 1) == 1
    # the raw row goes through another JDBC sink with its own flush, so it may land after the count
    def late_raw_rows():
        return pg.execute("SELECT count(*) FROM raw.web_events WHERE event_id = %s", (late["event_id"],)).fetchone()[0]
    assert wait_for(late_raw_rows, 1) == 1
    assert minute(late_ts) not in web_metrics()

    # dead letters: reason + where the record was
    expected_dlq = {
        sender.delivered["bad-json"]: ("web_events", "invalid JSON", bad_json),
        sender.delivered["bad-status"]: ("purchase_events", "unknown order_status: lost_in_transit", None),
        sender.delivered["bad-type"]: ("web_events", "invalid event_time: expected ISO-8601 UTC or epoch millis",
                                       None),
    }
    found = read_dead_letters(settings, run, len(expected_dlq))
    assert {(d["source_topic"], d["source_partition"], d["source_offset"]) for d in found} == {
        (topic, p, o) for (p, o), (topic, _, _) in expected_dlq.items()}
    for d in found:
        topic, reason, payload = expected_dlq[(d["source_partition"], d["source_offset"])]
        assert (d["source_topic"], d["reason"]) == (topic, reason)
        if payload is not None:
            assert d["payload"] == payload


def read_dead_letters(settings, marker: str, count: int, timeout: float = WAIT) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"it-{marker}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition("dead_letter", p, 0) for p in
                     consumer.list_topics("dead_letter").topics["dead_letter"].partitions])
    found, deadline = [], time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is None or msg.error():
                continue
            record = json.loads(msg.value())
            if marker in (record.get("payload") or ""):
                found.append(record)
    finally:
        consumer.close()
    return found


def test_taskmanager_killed_mid_stream_loses_and_duplicates_nothing(job, pg):
    settings = job
    run = uuid.uuid4().hex[:10]
    sender = Sender(settings)
    sup = Supervisor(settings)
    total, killed_at = 240, 80
    start = int(time.time() * 1000)
    events = [web_event(run, i, start + i * 100, "page_view", f"s-{run}-{i % 7}", f"it-{run}-{i % 11}")
              for i in range(total)]
    old_pid = None
    for i, e in enumerate(events):
        sender.send("web_events", e["customer_id"], e, f"e{i}")
        if i == killed_at:
            sender.flush()
            time.sleep(12)   # past at least one completed checkpoint, so recovery restores state
            old_pid = sup.info("flink-taskmanager")["pid"]
            os.kill(old_pid, signal.SIGKILL)
        time.sleep(0.1)
    sender.flush()

    def count():
        return pg.execute("SELECT count(*), count(DISTINCT event_id) FROM raw.web_events WHERE device_type = %s",
                          (f"it-{run}",)).fetchone()
    assert wait_for(count, (total, total), timeout=300) == (total, total)
    rows = {str(r[0]): (r[1], r[2]) for r in pg.execute(
        "SELECT event_id, kafka_partition, kafka_offset FROM raw.web_events WHERE device_type = %s", (f"it-{run}",))}
    assert rows == {e["event_id"]: sender.delivered[f"e{i}"] for i, e in enumerate(events)}
    new = sup.info("flink-taskmanager")
    assert new["statename"] == "RUNNING" and new["pid"] != old_pid

    # aggregates restored from the checkpoint plus the replayed events: exact, nothing counted twice
    expected = defaultdict(lambda: [0, set(), set()])
    for e in events:
        row = expected[minute(e["event_time"])]
        row[0] += 1
        row[1].add(e["session_id"])
        row[2].add(e["customer_id"])
    expected = {w: (v[0], len(v[1]), len(v[2])) for w, v in expected.items()}

    def metrics():
        return {r[0]: r[1:] for r in pg.execute(
            "SELECT window_start, page_views, sessions, unique_customers FROM realtime.web_metrics_1m "
            "WHERE device_type = %s", (f"it-{run}",))}
    assert wait_for(metrics, expected, timeout=120) == expected

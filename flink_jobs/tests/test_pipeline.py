"""Exact results of the job's SQL (flink_jobs/pipeline.py) on hand-made records: parsing,
dead-letter reasons, dedupe, lateness, and every aggregate."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

from flink_jobs import pipeline

T0 = datetime(2026, 1, 1, 10, 0)
MS = int((T0 - datetime(1970, 1, 1)).total_seconds() * 1000)   # 2026-01-01T10:00:00Z in epoch millis


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def web(n: int, at: str | int, event_type: str = "page_view", session: str = "s1", customer: str = "c1",
        device: str = "mobile", country: str = "DE", **extra) -> dict:
    return {"event_id": uid(n), "customer_id": customer, "session_id": session, "event_type": event_type,
            "page_url": "/", "product_id": None, "search_query": None, "device_type": device, "country": country,
            "utm_source": None, "event_time": at, **extra}


def order(n: int, at: str | int, total: float, items: list, status: str = "completed", method: str = "card",
          country: str = "DE") -> dict:
    return {"order_id": uid(n), "customer_id": "c1", "session_id": "s1", "order_time": at,
            "items": [{"product_id": p, "quantity": q, "unit_price": u} for p, q, u in items],
            "total_amount": total, "currency": "USD", "payment_method": method, "order_status": status,
            "shipping_country": country}


def at(minute: int, second: float = 0) -> int:
    return MS + int((minute * 60 + second) * 1000)


def t(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 1, 1, 10 + (minute // 60), minute % 60, second)


def test_both_time_formats_parse_to_the_same_instant(job):
    j = job(web=[web(1, "2026-01-01T10:00:01.250Z"), web(2, at(0, 1.25)), web(3, str(at(0, 1.25))),
                 web(4, "2026-01-01T10:00:01Z")])
    assert sorted(j.sink("sink_raw_web_events"), key=lambda r: r[0]) == [
        (uid(1), "c1", "s1", "page_view", "/", None, None, "mobile", "DE", None, datetime(2026, 1, 1, 10, 0, 1, 250000), 0, 0),
        (uid(2), "c1", "s1", "page_view", "/", None, None, "mobile", "DE", None, datetime(2026, 1, 1, 10, 0, 1, 250000), 0, 1),
        (uid(3), "c1", "s1", "page_view", "/", None, None, "mobile", "DE", None, datetime(2026, 1, 1, 10, 0, 1, 250000), 0, 2),
        (uid(4), "c1", "s1", "page_view", "/", None, None, "mobile", "DE", None, datetime(2026, 1, 1, 10, 0, 1), 0, 3),
    ]


def test_malformed_records_go_to_dead_letter_with_reason_and_offset(job):
    good = web(1, at(0))
    missing = dict(good, event_id=uid(3))
    del missing["session_id"]
    records = [
        good,                                                              # 0 valid
        '{"event_id": "x", "customer_id": ',                              # 1 truncated
        "[1, 2]",                                                          # 2 not an object
        missing,                                                           # 3
        dict(good, event_id=uid(4), customer_id=42),                      # 4 wrong type
        dict(good, event_id="not-a-uuid"),                                # 5
        dict(good, event_id=uid(6), event_type="teleport"),               # 6
        dict(good, event_id=uid(7), event_time="2025-01-06T00:30:37.215000+00:00"),  # 7 (simulators' wrong_type)
        dict(good, event_id=uid(8), event_time=None),                     # 8 null = missing
        dict(good, event_id=uid(9), country="Germany"),                   # 9
        dict(good, event_id=uid(10), product_id=7),                       # 10 optional field, wrong type
        "",                                                                # 11 empty
    ]
    bad_orders = [
        order(20, at(0), 10.0, [("p", 1, 10.0)], status="lost_in_transit"),
        dict(order(21, at(0), 10.0, [("p", 1, 10.0)]), total_amount="43.29"),
        dict(order(22, at(0), 10.0, [("p", "two", 10.0)])),
        dict(order(23, at(0), 10.0, [])),
        dict(order(24, at(0), 10.0, [("p", 1, 10.0)]), items={"p": 1}),
        order(25, at(0), 10.0, [("p", 1, 1.0)] * (pipeline.MAX_ITEMS + 1)),
    ]
    j = job(web=records, orders=bad_orders)
    dead = sorted((r[0], r[2], r[3]) for r in j.sink("sink_dead_letter"))
    assert dead == [
        ("purchase_events", 0, "unknown order_status: lost_in_transit"),
        ("purchase_events", 1, "wrong type for total_amount: expected number"),
        ("purchase_events", 2, "invalid items: every item needs quantity (positive integer)"),
        ("purchase_events", 3, "invalid items: empty"),
        ("purchase_events", 4, "wrong type for items: expected array"),
        ("purchase_events", 5, f"invalid items: more than {pipeline.MAX_ITEMS} line items"),
        ("web_events", 1, "invalid JSON"),
        ("web_events", 2, "invalid JSON: not an object"),
        ("web_events", 3, "missing required field: session_id"),
        ("web_events", 4, "wrong type for customer_id: expected string"),
        ("web_events", 5, "invalid event_id: not a UUID"),
        ("web_events", 6, "unknown event_type: teleport"),
        ("web_events", 7, "invalid event_time: expected ISO-8601 UTC or epoch millis"),
        ("web_events", 8, "missing required field: event_time"),
        ("web_events", 9, "invalid country: expected an ISO 3166 alpha-2 code"),
        ("web_events", 10, "wrong type for product_id: expected string"),
        ("web_events", 11, "empty record"),
    ]
    # the payload travels with the reason, byte for byte
    assert [r[4] for r in j.sink("sink_dead_letter") if r[2] == 1 and r[0] == "web_events"] == [records[1]]
    assert [r[0] for r in j.sink("sink_raw_web_events")] == [uid(1)]
    assert j.sink("sink_raw_purchase_events") == []


def test_duplicates_count_once_and_keep_the_first_offset(job):
    e = web(1, at(0, 5))
    o = order(2, at(0, 6), 12.5, [("p1", 2, 5.0), ("p2", 1, 2.5)])
    j = job(web=[e, web(3, at(0, 7)), e, e], orders=[o, o])
    assert sorted((r[0], r[12]) for r in j.sink("sink_raw_web_events")) == [(uid(1), 0), (uid(3), 1)]
    assert j.sink("sink_raw_purchase_events") == [
        (uid(2), "c1", "s1", datetime(2026, 1, 1, 10, 0, 6), json.dumps(o["items"], separators=(",", ":")), 3,
         Decimal("12.50"), "USD", "card", "completed", "DE", 0, 0)]
    assert [r[4] for r in j.sink("sink_web_metrics_1m")] == [2]
    assert [r[4] for r in j.sink("sink_order_metrics_1m")] == [1]


def test_web_metrics_late_events_and_allowed_lateness(job):
    # watermark = max event time - 5 s; a window [m, m+1) takes events until the watermark passes m+1:30
    records = [
        web(1, at(0, 1), "page_view", session="s1", customer="c1"),
        web(2, at(0, 30), "product_view", session="s1", customer="c1"),
        web(3, at(0, 40), "add_to_cart", session="s2", customer="c2", device="desktop"),
        web(4, at(1, 20), "checkout_start", session="s2", customer="c2"),
        web(5, at(0, 50), "page_view", session="s3", customer="c3"),     # out of order, within lateness: counts
        web(6, at(1, 34), "search", session="s3", customer="c3"),        # watermark -> 10:01:29
        web(7, at(0, 55), "page_view", session="s4", customer="c4"),     # 10:01:00 + 30 s > 10:01:29: still on time
        web(8, at(1, 36), "page_view", session="s4", customer="c4"),     # watermark -> 10:01:31
        web(9, at(0, 58), "page_view", session="s5", customer="c5"),     # 10:01:30 <= 10:01:31: late
        web(9, at(0, 58), "page_view", session="s5", customer="c5"),     # its duplicate: not counted twice
        web(10, at(5, 0), "page_view", session="s6", customer="c6", country="FR"),
        web(11, at(1, 0), "page_view", session="s7", customer="c7"),     # watermark 10:04:55: late
    ]
    j = job(web=records)
    assert sorted(j.sink("sink_web_metrics_1m")) == [
        # window_start, window_end, country, device, page_views, product_views, add_to_carts, checkouts, sessions, customers
        (t(0), t(1), "DE", "desktop", 0, 0, 1, 0, 1, 1),
        (t(0), t(1), "DE", "mobile", 3, 1, 0, 0, 3, 3),
        (t(1), t(2), "DE", "mobile", 1, 0, 0, 1, 3, 3),
        (t(5), t(6), "FR", "mobile", 1, 0, 0, 0, 1, 1),
    ]
    # one row per late event (the duplicate of event 9 adds none): source, key, window, time, partition, offset
    assert sorted(j.sink("sink_late_events")) == [
        ("web_events", uid(9), t(0), datetime(2026, 1, 1, 10, 0, 58), 0, 8),
        ("web_events", uid(11), t(1), t(1), 0, 11)]
    # late events are not lost: every distinct valid event has its raw row
    assert len(j.sink("sink_raw_web_events")) == 11


def test_active_sessions_slide_over_five_minutes(job):
    j = job(web=[web(1, at(0, 10), session="a", customer="x"), web(2, at(2, 0), session="b", customer="x"),
                 web(3, at(2, 30), session="b", customer="x"), web(4, at(4, 59), session="c", customer="y")])
    minute_of = {"a": 0, "b": 2, "c": 4}
    customer_of = {"a": "x", "b": "x", "c": "y"}
    expected = []
    for start in range(-4, 5):   # every 5-minute window, sliding by 1 minute, that holds an event
        active = {s for s, m in minute_of.items() if start <= m < start + 5}
        expected.append((T0 + timedelta(minutes=start), T0 + timedelta(minutes=start + 5), len(active),
                         len({customer_of[s] for s in active})))
    assert sorted(j.sink("sink_active_sessions")) == expected
    assert expected[4] == (t(0), t(5), 3, 2)   # 10:00-10:05 sees all three sessions of two customers


def test_order_metrics_count_completed_orders_only(job):
    j = job(orders=[
        order(1, at(0, 1), 10.00, [("p1", 1, 10.00)], method="card"),
        order(2, at(0, 2), 10.01, [("p2", 2, 5.00), ("p3", 1, 0.01)], method="card"),
        order(3, at(0, 3), 99.99, [("p4", 1, 99.99)], method="card", status="cancelled"),
        order(4, at(0, 4), 50.00, [("p5", 5, 10.00)], method="card", status="refunded"),
        order(5, at(0, 5), 7.50, [("p6", 3, 2.50)], method="paypal"),
        order(6, at(1, 0), 1.00, [("p7", 1, 1.00)], method="card", country="FR"),
    ])
    assert sorted(j.sink("sink_order_metrics_1m")) == [
        # window, end, country, method, orders, revenue, items, avg (half-up: 20.01 / 2 = 10.005 -> 10.01)
        (t(0), t(1), "DE", "card", 2, Decimal("20.01"), 4, Decimal("10.01")),
        (t(0), t(1), "DE", "paypal", 1, Decimal("7.50"), 3, Decimal("7.50")),
        (t(1), t(2), "FR", "card", 1, Decimal("1.00"), 1, Decimal("1.00")),
    ]
    assert {r[0]: (r[5], r[9]) for r in j.sink("sink_raw_purchase_events")} == {
        uid(1): (1, "completed"), uid(2): (3, "completed"), uid(3): (1, "cancelled"), uid(4): (5, "refunded"),
        uid(5): (3, "completed"), uid(6): (1, "completed")}


def test_aggregates_in_batch_mode_on_in_memory_rows():
    """The window SQL is plain SQL over a deduplicated view: it gives the same rows in batch mode."""
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    schema = DataTypes.ROW([DataTypes.FIELD("event_ts", DataTypes.TIMESTAMP(3)),
                            DataTypes.FIELD("is_late", DataTypes.BOOLEAN()),
                            DataTypes.FIELD("event_type", DataTypes.STRING()),
                            DataTypes.FIELD("session_id", DataTypes.STRING()),
                            DataTypes.FIELD("customer_id", DataTypes.STRING()),
                            DataTypes.FIELD("country", DataTypes.STRING()),
                            DataTypes.FIELD("device_type", DataTypes.STRING())])
    rows = [(datetime(2026, 1, 1, 10, 0, 1), False, "page_view", "s1", "c1", "DE", "mobile"),
            (datetime(2026, 1, 1, 10, 0, 59), False, "add_to_cart", "s2", "c1", "DE", "mobile"),
            (datetime(2026, 1, 1, 10, 0, 30), True, "page_view", "s3", "c3", "DE", "mobile"),
            (datetime(2026, 1, 1, 10, 1, 0), False, "checkout_start", "s2", "c1", "DE", "mobile")]
    t_env.create_temporary_view("deduped", t_env.from_elements(rows, schema))
    with t_env.execute_sql(pipeline.web_metrics_sql("deduped")).collect() as results:
        got = sorted(tuple(r) for r in results)
    assert got == [(t(0), t(1), "DE", "mobile", 1, 0, 1, 0, 2, 1), (t(1), t(2), "DE", "mobile", 0, 0, 0, 1, 1, 1)]


def test_a_replay_rebuilds_open_windows_and_sends_nothing_twice(job):
    """An upgrade's replay (pipeline.Replay): offsets below `done` were processed by the old job. Their
    raw rows are upserted again, but they send no dead letter and write no late-event row; the
    aggregates count only windows from `aggregate_from` on, which the replay holds whole."""
    replay = pipeline.Replay(done={"web_events": {0: 4}}, aggregate_from="2026-01-01 10:02:00")
    j = job(web=[web(1, at(0, 10), session="a"),                     # 0 replayed, window before aggregate_from
                 "not json",                                           # 1 replayed: its dead letter was sent
                 web(2, at(2, 5), session="b"),                        # 2 replayed, counted (window 10:02)
                 web(3, at(3, 0), session="c"),                        # 3 replayed
                 web(4, at(0, 20), session="d"),                       # 4 new but late: watermark 10:02:55
                 "[1]",                                                # 5 new: a dead letter
                 web(5, at(2, 30), session="e")],                      # 6 new, counted
            replay=replay)
    assert sorted(r[0] for r in j.sink("sink_raw_web_events")) == [uid(n) for n in range(1, 6)]
    assert [(r[1], r[2]) for r in j.sink("sink_dead_letter")] == [(0, 5)]
    assert [(r[1], r[2]) for r in j.sink("sink_late_events")] == [(uid(4), t(0))]
    assert sorted((r[0], r[4], r[8]) for r in j.sink("sink_web_metrics_1m")) == [(t(2), 2, 2), (t(3), 1, 1)]
    # 5-minute windows starting before 10:02 would miss the events before it: not written
    assert sorted((r[0], r[2]) for r in j.sink("sink_active_sessions")) == [(t(2), 3), (t(3), 1)]


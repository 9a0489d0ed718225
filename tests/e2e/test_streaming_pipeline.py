"""The whole streaming side end to end, reconciled exactly against the simulators' ledgers:

  simulators ─► Kafka (web_events, purchase_events) ─► Flink churn-streaming ─► PostgreSQL raw.* / realtime.*
                                                                         └──► dead_letter
  crm.customers + raw.* ─► Debezium ─► Kafka cdc.* ─► CDC sink ─► ClickHouse cdc.* (FINAL, _is_deleted = 0)

What every run asserts (after the pipeline is idle: the job's consumer group has committed past the
last offset this run produced, then the rows are polled until they match and are re-read once):

* raw.web_events / raw.purchase_events hold exactly the ledger's valid records (duplicates collapsed,
  malformed ones absent), every column equal to what was sent, kafka_partition/offset = the first copy;
* the dead-letter records whose source topic/partition/offset is one of this run's messages are exactly
  the malformed messages, once each, with the payload sent and the reason the job's rules give;
* realtime.web_metrics_1m / order_metrics_1m rows of this run's dimensions = the aggregates computed
  here from the ledger (which must also equal the ledger's own per-window counts);
* realtime.late_events_1m: see "Lateness" below;
* the ClickHouse mirror equals PostgreSQL row for row for this run's customers (inserts, updates,
  deletes of `run_customers`) and raw events, and crm.customers equals the customer ledger.

Isolation from other data on the shared topics/tables: customer ids carry a per-run prefix, every
seed is fresh (the simulators derive event/order ids from the seed, and the job deduplicates ids for
6 h), and the records pass through `TaggingSink`, which appends the run tag to `device_type` and
`payment_method` - the dimensions of the aggregate tables besides country - so no other producer can
add to this run's aggregate rows. Everything else in the records is the simulators' output, bytes
included (duplicates stay byte-identical).

Lateness (flink_jobs/pipeline.py): an event is late iff, when processed, the job's watermark (max event
time per partition - 5 s, min over active partitions, monotonic) has reached its window end + 30 s.
The watermark depends on what else is on the topics (other producers, restarts), so the expectation
is made exact by construction:
* the live run (event time = now) sends its simulator-late records 10 s after their event time, and
  at the end of the run the rest of them even sooner: the watermark is then at most ~event time + 5 s,
  far below window end + 30 s (>= event time + 30 s), so they are *on time*: in the aggregates and
  never in late_events_1m;
* a second, backfill run (a unique window in 2002-2019) is sent after the live run was processed,
  so the watermark is ~now and every one of its records is *beyond* the allowed lateness: all land in
  the raw tables and in late_events_1m (distinct records per window and topic), none in the aggregates.
  The test checks the job's watermark before sending it.

The crash test kills -9 the Flink TaskManager and the CDC sink in the middle of a live run, brings them
back with `python -m stack up`, and asserts the same equalities (no loss, no duplicates).
"""
from __future__ import annotations

import datetime as dt
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal

import orjson
import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from flink_jobs import deploy
from platform_common import clients, flink_rest
from platform_common.contracts import FLINK_CONSUMER_GROUP, FLINK_JOB_NAME
from simulators import run, run_customers
from simulators.customers import COLUMNS as CUSTOMER_COLUMNS
from simulators.events import ORDER_REQUIRED, WEB_REQUIRED
from simulators.ledger import WEB_TYPES
from simulators.sinks import PRODUCER_CONFIG
from stack.supervisor import Supervisor
from tests.conftest import run_stack
from tests.integration.test_cdc import mirror_rows, pg_rows, sink_health
from tests.support import waiting

pytestmark = pytest.mark.e2e

UTC = dt.UTC
TOPICS = ("web_events", "purchase_events")
FLINK_GROUP = FLINK_CONSUMER_GROUP
WINDOW_MS = 60_000
LIVE_LATE_DELAY_S = 10          # << window end + 30 s: simulator-late records stay within the lateness
WAIT = 180


# -- producing -----------------------------------------------------------------------------------
class TaggingSink:
    """The simulators' Kafka producer settings, plus: the run tag appended to device_type and
    payment_method of every record that parses as an object, and where each message landed."""

    def __init__(self, settings, tag: str):
        self.tag = tag
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, **PRODUCER_CONFIG,
                                  "delivery.report.only.error": False, "linger.ms": 20})
        self.messages: list[tuple[str, bytes, bytes]] = []     # (topic, key, value) in send order
        self.where: dict[int, tuple[int, int]] = {}           # message index -> (partition, offset)
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def _tagged(self, value: bytes) -> bytes:
        try:
            rec = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value                                       # a malformed record: as it is
        if not isinstance(rec, dict):
            return value
        for field in ("device_type", "payment_method"):
            if isinstance(rec.get(field), str):
                rec[field] = f"{rec[field]}~{self.tag}"
        return orjson.dumps(rec)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        value = self._tagged(value)
        with self.lock:
            i = len(self.messages)
            self.messages.append((topic, key, value))

        def done(err, msg, i=i):
            if err is not None:
                self.errors.append(str(err))
            else:
                self.where[i] = (msg.partition(), msg.offset())
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=done)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0 and not self.errors, self.errors
        assert len(self.where) == len(self.messages)


class Run:
    """One reconciliation scope: a customer prefix, a tag, and every event-simulator run sent with it."""

    def __init__(self, settings, tmp_path):
        self.settings = settings
        self.tmp = tmp_path
        self.key = uuid.uuid4().hex[:8]
        self.prefix = f"e2e{self.key}_"
        self.tag = f"e2e{self.key}"
        self.customers = 400
        self.sink = TaggingSink(settings, self.tag)
        self.ledgers = []            # (ledger, first message index) per event run
        self.seed = random.randrange(2 ** 31)
        self.dlq_start = end_offsets(settings, "dead_letter")

    def events(self, **options):
        first = len(self.sink.messages)
        ledger = run(sink=self.sink, seed=self.seed + len(self.ledgers) + 1, customers=self.customers,
                     id_prefix=self.prefix, quiet=True, ledger="full", ledger_dir=self.tmp / f"ledger{len(self.ledgers)}",
                     **options)
        self.sink.flush()
        assert len(ledger.rows) == len(self.sink.messages) - first   # one ledger row per message, in order
        assert (self.tmp / f"ledger{len(self.ledgers)}" / "sent.parquet").exists()
        self.ledgers.append((ledger, first))
        return ledger

    # what the messages are, by kind
    def sent(self):
        """[(index, topic, kind, record id, record dict or None, ledger row)] for every message."""
        out = []
        for ledger, first in self.ledgers:
            for j, row in enumerate(ledger.rows):
                i = first + j
                topic, _key, value = self.sink.messages[i]
                assert topic == row[0]
                rec = orjson.loads(value) if row[2] != "malformed" else None
                out.append((i, topic, row[2], row[3], rec, row))
        return out


def end_offsets(settings, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"e2e-{uuid.uuid4()}",
                  "isolation.level": "read_committed"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


# -- waiting ---------------------------------------------------------------------------------------
def wait_for(fetch, expected, timeout: float = WAIT):
    """Until fetch() == expected, then once more 2 s later (stable); returns the last read."""
    return waiting.wait_for(fetch, expected, timeout, settle=2.0, interval=1.0)


def wait_flink_consumed(settings, sink: TaggingSink, timeout: float = WAIT) -> float:
    """Until the job's consumer group committed (at a completed checkpoint) past every message sent."""
    last: dict[tuple[str, int], int] = {}
    for i, (topic, _, _) in enumerate(sink.messages):
        p, o = sink.where[i]
        last[(topic, p)] = max(last.get((topic, p), -1), o)
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": FLINK_GROUP,
                  "enable.auto.commit": False})
    t0 = time.monotonic()
    try:
        while True:
            committed = {(tp.topic, tp.partition): tp.offset for tp in
                         c.committed([TopicPartition(t, p) for t, p in last], timeout=10)}
            behind = {tp: o + 1 - committed[tp] for tp, o in last.items() if committed[tp] <= o}
            if not behind:
                return time.monotonic() - t0
            assert time.monotonic() - t0 < timeout, (
                f"Flink consumer group {FLINK_GROUP} still behind: {behind}; {job_diagnosis(settings)}")
            time.sleep(1)
    finally:
        c.close()


def job_diagnosis(settings) -> str:
    """What the JobManager says about the job: its state, its checkpoints and its latest failures (the
    group's offsets are committed only when a checkpoint completes, so a stuck group is one of these)."""
    url = flink_rest.rest_url(settings)
    try:
        jobs = [j for j in flink_rest.jobs(settings) if j["name"] == FLINK_JOB_NAME]
        out = []
        for j in sorted(jobs, key=lambda j: j["start-time"], reverse=True)[:2]:
            ck = requests.get(f"{url}/jobs/{j['jid']}/checkpoints", timeout=5).json()
            latest = {k: (v or {}).get("id") for k, v in (ck.get("latest") or {}).items()}
            history = [(h.get("id"), h.get("status"), h.get("failure_message")) for h in ck.get("history", [])[:3]]
            exc = requests.get(f"{url}/jobs/{j['jid']}/exceptions", timeout=5).json()
            recent = [(e.get("timestamp"), e.get("exceptionName"), (e.get("stacktrace") or "")[:300])
                      for e in exc.get("exceptionHistory", {}).get("entries", [])[:3]]
            out.append(f"job {j['jid']} {j['state']} tasks={j.get('tasks')} checkpoints={ck.get('counts')} "
                       f"latest={latest} recent={history} failures={recent}")
        log = settings.data_dir / "logs" / "flink-jobmanager.log"
        warnings = [line[:240] for line in log.read_text(errors="replace").splitlines()[-3000:]
                    if " WARN " in line or " ERROR " in line][-6:] if log.exists() else []
        return " | ".join(out or ["no churn-streaming job known to the JobManager"]) + f" | JobManager log: {warnings}"
    except (requests.RequestException, ValueError, KeyError) as exc:
        return f"JobManager REST unreachable: {exc!r}"


def job_failures_since(settings, since_ms: int) -> tuple[str, list[str]]:
    """The running job's id and the failures in its exception history since `since_ms` (what it recovered from)."""
    job = flink_rest.running_job(settings)
    assert job, "churn-streaming is not running"
    got = requests.get(f"{flink_rest.rest_url(settings)}/jobs/{job['jid']}/exceptions", timeout=5).json()
    return job["jid"], [e.get("exceptionName", "?") for e in got["exceptionHistory"]["entries"]
                        if e.get("timestamp", 0) >= since_ms]


NO_WATERMARK = -(2**63)


def job_watermarks(settings) -> dict[str, int]:
    """The input watermark of the job's two dedupe operators (web, orders), epoch ms."""
    url = flink_rest.rest_url(settings)
    job = flink_rest.running_job(settings)
    assert job, "churn-streaming is not running"
    vertices = requests.get(f"{url}/jobs/{job['jid']}", timeout=5).json()["vertices"]
    out = {}
    for v in vertices:
        for name, marker in (("web", "sink_raw_web_events"), ("orders", "sink_raw_purchase_events")):
            if v["name"].startswith("Deduplicate") and marker in v["name"]:
                marks = requests.get(f"{url}/jobs/{job['jid']}/vertices/{v['id']}/watermarks", timeout=5).json()
                # a freshly (re)started job reports no watermark metric until its first refresh
                out[name] = min((int(m["value"]) for m in marks), default=NO_WATERMARK)
    return out


# -- expectations from the ledger --------------------------------------------------------------
def ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


def cents(x) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"))


def expected_raw(r: Run):
    """Raw rows the job must write: each valid record once, at the offset of its first copy."""
    web, orders = {}, {}
    for i, topic, kind, rid, rec, _row in r.sent():
        if kind != "valid":
            continue
        p, o = r.sink.where[i]
        if topic == "web_events":
            assert rid not in web
            web[rid] = (rec["customer_id"], rec["session_id"], rec["event_type"], rec["page_url"], rec["product_id"],
                        rec["search_query"], rec["device_type"], rec["country"], rec["utm_source"],
                        ts(rec["event_time"]), p, o)
        else:
            assert rid not in orders
            orders[rid] = (rec["customer_id"], rec["session_id"], ts(rec["order_time"]), rec["items"],
                           sum(it["quantity"] for it in rec["items"]), cents(rec["total_amount"]), rec["currency"],
                           rec["payment_method"], rec["order_status"], rec["shipping_country"], p, o)
    # the first copy: a duplicate is sent right after its original, so it has a higher offset
    for i, topic, kind, rid, _rec, _row in r.sent():
        if kind == "duplicate":
            table = web if topic == "web_events" else orders
            if rid in table:
                assert r.sink.where[i][0] == table[rid][-2] and r.sink.where[i][1] > table[rid][-1]
    return web, orders


def expected_web_metrics(ledger, tag: str):
    """From the ledger's per-window counts (window ms, country, device) -> row."""
    out = {}
    n = len(WEB_TYPES)
    for (w, country, device), agg in ledger.web_windows.items():
        counts = dict(zip(WEB_TYPES, agg[:n]))
        out[(ts(w), country, f"{device}~{tag}")] = (
            ts(w + WINDOW_MS), counts["page_view"], counts["product_view"], counts["add_to_cart"],
            counts["checkout_start"], len(agg[n]), len(agg[n + 1]))
    return out


def web_metrics_from_records(records):
    acc = defaultdict(lambda: [Counter(), set(), set()])
    for rec in records:
        w = rec["event_time"] - rec["event_time"] % WINDOW_MS
        a = acc[(ts(w), rec["country"], rec["device_type"])]
        a[0][rec["event_type"]] += 1
        a[1].add(rec["session_id"])
        a[2].add(rec["customer_id"])
    return {k: (k[0] + dt.timedelta(minutes=1), c["page_view"], c["product_view"], c["add_to_cart"],
                c["checkout_start"], len(s), len(cu)) for k, (c, s, cu) in acc.items()}


def order_metrics_from_records(records):
    acc = defaultdict(lambda: [0, Decimal(0), 0])
    for rec in records:
        if rec["order_status"] != "completed":
            continue
        w = rec["order_time"] - rec["order_time"] % WINDOW_MS
        a = acc[(ts(w), rec["shipping_country"], rec["payment_method"])]
        a[0] += 1
        a[1] += cents(rec["total_amount"])
        a[2] += sum(it["quantity"] for it in rec["items"])
    return {k: (n, rev, items, (rev / n).quantize(Decimal("0.01"), ROUND_HALF_UP)) for k, (n, rev, items) in acc.items()}


def expected_order_metrics_from_ledger(ledger, tag: str):
    """completed orders per (window, country, payment method) from the ledger's order windows."""
    out = {}
    for (w, country, method), agg in ledger.order_windows.items():
        if agg[3]:
            out[(ts(w), country, f"{method}~{tag}")] = (agg[3], Decimal(agg[6]) / 100)
    return out


def dlq_reason_ok(reason: str, sim_reason: str, payload: bytes, topic: str) -> bool:
    if sim_reason == "invalid_json":
        return reason == "invalid JSON"
    if sim_reason == "missing_field":
        rec = orjson.loads(payload)
        missing = [f for f in (WEB_REQUIRED if topic == "web_events" else ORDER_REQUIRED) if f not in rec]
        return len(missing) == 1 and reason == f"missing required field: {missing[0]}"
    if sim_reason == "wrong_type":
        return reason in ("invalid event_time: expected ISO-8601 UTC or epoch millis",
                          "wrong type for total_amount: expected number",
                          "invalid items: every item needs quantity (positive integer)")
    if sim_reason == "unknown_event_type":
        return reason == "unknown event_type: teleport"
    return reason == "unknown order_status: lost_in_transit"


# -- reading the pipeline's output -------------------------------------------------------------
def pg_connect(settings):
    return psycopg.connect(settings.postgres_dsn(settings.postgres_bi_user, settings.postgres_bi_password),
                           autocommit=True)


def raw_web_rows(conn, prefix):
    return {str(r[0]): tuple(r[1:]) for r in conn.execute(
        "SELECT event_id, customer_id, session_id, event_type, page_url, product_id, search_query, device_type, "
        "country, utm_source, event_time, kafka_partition, kafka_offset FROM raw.web_events "
        "WHERE starts_with(customer_id, %s)", (prefix,))}


def raw_order_rows(conn, prefix):
    return {str(r[0]): tuple(r[1:]) for r in conn.execute(
        "SELECT order_id, customer_id, session_id, order_time, items, item_count, total_amount, currency, "
        "payment_method, order_status, shipping_country, kafka_partition, kafka_offset FROM raw.purchase_events "
        "WHERE starts_with(customer_id, %s)", (prefix,))}


def web_metric_rows(conn, tag):
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in conn.execute(
        "SELECT window_start, country, device_type, window_end, page_views, product_views, add_to_carts, checkouts, "
        "sessions, unique_customers FROM realtime.web_metrics_1m WHERE device_type LIKE %s", (f"%~{tag}",))}


def order_metric_rows(conn, tag):
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in conn.execute(
        "SELECT window_start, country, payment_method, orders, revenue, items, avg_order_value "
        "FROM realtime.order_metrics_1m WHERE payment_method LIKE %s", (f"%~{tag}",))}


def late_rows(conn, lo: dt.datetime, hi: dt.datetime):
    return {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT window_start, source, late_events FROM realtime.late_events_1m "
        "WHERE window_start >= %s AND window_start <= %s", (lo, hi))}


def read_dead_letters(settings, start: dict[int, int], ours: dict[tuple[str, int, int], int], want: int,
                      timeout: float = WAIT) -> list[dict]:
    """Dead letters (read_committed) from `start` whose source is one of this run's messages: reads until
    `want` are found and then to the end of the topic, so extra copies would be seen too."""
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"e2e-{uuid.uuid4()}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.assign([TopicPartition("dead_letter", p, o) for p, o in start.items()])
    found, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = c.poll(1)
            if msg is None:
                if len(found) >= want:
                    end = end_offsets(settings, "dead_letter")
                    pos = {tp.partition: tp.offset for tp in c.position([TopicPartition("dead_letter", p) for p in end])}
                    if all(pos[p] >= o for p, o in end.items()):
                        break
                continue
            if msg.error():
                continue
            d = orjson.loads(msg.value())
            if (d.get("source_topic"), d.get("source_partition"), d.get("source_offset")) in ours:
                found.append(d)
    finally:
        c.close()
    return found


# -- the reconciliation shared by both tests ------------------------------------------------------
def assert_pipeline_matches(r: Run, live_ledgers, past_ledger=None, cl=None):
    settings = r.settings
    timings = {"flink consumed": wait_flink_consumed(settings, r.sink)}
    sent = r.sent()
    t0 = time.monotonic()
    exp_web, exp_orders = expected_raw(r)
    with pg_connect(settings) as conn:
        # raw tables = ledger - duplicates - malformed, every column
        got_web = wait_for(lambda: raw_web_rows(conn, r.prefix), exp_web)
        assert set(got_web) == set(exp_web), (f"raw.web_events: {len(set(exp_web) - set(got_web))} missing, "
                                              f"{len(set(got_web) - set(exp_web))} unexpected")
        assert got_web == exp_web
        got_orders = wait_for(lambda: raw_order_rows(conn, r.prefix), exp_orders)
        assert set(got_orders) == set(exp_orders)
        assert got_orders == exp_orders
        n_valid = sum(1 for s in sent if s[2] == "valid")
        assert len(exp_web) + len(exp_orders) == n_valid == sum(lg.valid for lg, _ in r.ledgers)

        # aggregates of the live runs' windows: the ledger's counts, all records (simulator-late ones too)
        live_web = [s[4] for s in sent if s[2] == "valid" and s[1] == "web_events"
                    and any(s[0] >= first and s[0] < first + len(lg.rows) for lg, first in live_ledgers)]
        live_orders = [s[4] for s in sent if s[2] == "valid" and s[1] == "purchase_events"
                       and any(s[0] >= first and s[0] < first + len(lg.rows) for lg, first in live_ledgers)]
        exp_wm = web_metrics_from_records(live_web)
        from_ledgers = {}
        for lg, _ in live_ledgers:
            from_ledgers.update(expected_web_metrics(lg, r.tag))   # one live run per test: no overlap
        assert exp_wm == from_ledgers, "the records sent and the ledger's web windows disagree"
        got_wm = wait_for(lambda: web_metric_rows(conn, r.tag), exp_wm)
        assert got_wm == exp_wm, {k: (got_wm.get(k), exp_wm.get(k)) for k in set(got_wm) | set(exp_wm)
                                  if got_wm.get(k) != exp_wm.get(k)}
        exp_om = order_metrics_from_records(live_orders)
        ledger_om = {}
        for lg, _ in live_ledgers:
            ledger_om.update(expected_order_metrics_from_ledger(lg, r.tag))
        assert {k: (v[0], v[1]) for k, v in exp_om.items()} == ledger_om
        got_om = wait_for(lambda: order_metric_rows(conn, r.tag), exp_om)
        assert got_om == exp_om, {k: (got_om.get(k), exp_om.get(k)) for k in set(got_om) | set(exp_om)
                                  if got_om.get(k) != exp_om.get(k)}
        assert sum(v[0] for v in got_om.values()) > 0 and sum(v[1] for v in got_wm.values()) > 0

        # lateness: the live runs' simulator-late records were within the allowed lateness ...
        live_times = [rec["event_time"] for rec in live_web] + [rec["order_time"] for rec in live_orders]
        lo, hi = ts(min(live_times) - min(live_times) % WINDOW_MS), ts(max(live_times))
        assert sum(lg.web.late + lg.purchases.late for lg, _ in live_ledgers) > 0
        assert late_rows(conn, lo, hi) == {}, "late events counted in the live run's windows"
        # ... the past run's records all beyond it: counted per window and topic, in no aggregate
        if past_ledger is not None:
            exp_late = Counter()
            first = next(f for lg, f in r.ledgers if lg is past_ledger)
            for s in sent:
                if s[2] == "valid" and first <= s[0] < first + len(past_ledger.rows):
                    t = s[5][5]
                    exp_late[(ts(t - t % WINDOW_MS), s[1])] += 1
            plo, phi = min(k[0] for k in exp_late), max(k[0] for k in exp_late)
            got_late = wait_for(lambda: late_rows(conn, plo, phi), dict(exp_late))
            assert got_late == dict(exp_late)
            assert not any(plo <= k[0] <= phi for k in got_wm) and not any(plo <= k[0] <= phi for k in got_om)
    timings["postgres checks"] = time.monotonic() - t0

    # dead letters = the malformed messages, once each, with their payload and reason
    t0 = time.monotonic()
    ours = {}
    malformed = {}
    for i, topic, kind, _rid, _rec, row in sent:
        p, o = r.sink.where[i]
        ours[(topic, p, o)] = i
        if kind == "malformed":
            malformed[(topic, p, o)] = (i, row[8])
    assert malformed, "no malformed records were injected"
    found = read_dead_letters(settings, r.dlq_start, ours, len(malformed))
    keys = [(d["source_topic"], d["source_partition"], d["source_offset"]) for d in found]
    assert Counter(keys) == Counter(malformed.keys()), (
        f"dead letters: {len(set(malformed) - set(keys))} missing, {len(set(keys) - set(malformed))} not malformed, "
        f"{len(keys) - len(set(keys))} duplicated")
    for d, key in zip(found, keys):
        i, sim_reason = malformed[key]
        payload = r.sink.messages[i][2]
        assert d["payload"] == payload.decode(), key
        assert dlq_reason_ok(d["reason"], sim_reason, payload, key[0]), (sim_reason, d["reason"])
    timings["dead letters"] = time.monotonic() - t0

    # CDC: the ClickHouse mirror equals PostgreSQL for this run's customers and events
    t0 = time.monotonic()
    ch = clients.clickhouse(settings)
    tables = ["raw.web_events", "raw.purchase_events"] + (["crm.customers"] if cl is not None else [])
    for table in tables:
        def both(table=table):
            return pg_rows(settings, table, r.prefix), mirror_rows(settings, ch, table, r.prefix)
        deadline = time.monotonic() + WAIT
        while True:
            expected, actual = both()
            if expected == actual:
                time.sleep(2)
                expected, actual = both()     # stable
                if expected == actual:
                    break
            assert time.monotonic() < deadline, f"{table}: mirror differs ({len(actual)} rows vs {len(expected)})"
            time.sleep(1)
        assert len(expected) == (len(exp_web) if table == "raw.web_events" else
                                 len(exp_orders) if table == "raw.purchase_events" else len(cl.final))
        dupes = ch.query(f"SELECT count() - uniqExact({'event_id' if 'web' in table else 'order_id' if 'purchase' in table else 'customer_id'}) "
                         f"FROM cdc.{table.replace('.', '_')} FINAL WHERE _is_deleted = 0 AND "
                         f"startsWith(customer_id, {{p:String}})", parameters={"p": r.prefix}).result_rows[0][0]
        assert dupes == 0
    if cl is not None:
        with psycopg.connect(settings.postgres_dsn(settings.postgres_bi_user, settings.postgres_bi_password)) as conn:
            rows = conn.execute(f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM crm.customers "
                                "WHERE starts_with(customer_id, %s) ORDER BY customer_id", (r.prefix,)).fetchall()
        assert [tuple(x) for x in rows] == cl.final_rows()
    timings["cdc mirror"] = time.monotonic() - t0
    health = sink_health(settings)
    print(f"\n{r.tag}: {len(r.sink.messages)} messages, {len(exp_web)} web events, {len(exp_orders)} orders, "
          f"{len(malformed)} malformed; waits: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
          + f"; cdc-sink lag {health and health.get('lag')}")


LIVE = dict(mode="live", rate=120, late_rate=0.03, late_delay_s=LIVE_LATE_DELAY_S, duplicate_rate=0.02,
            malformed_rate=0.02)


@pytest.fixture(scope="module")
def job(stack_up):
    deploy.ensure_job(stack_up)
    assert flink_rest.running_job(stack_up)
    return stack_up


def test_pipeline_output_equals_the_ledgers(job, tmp_path):
    settings = job
    r = Run(settings, tmp_path)
    cl = run_customers(customers=r.customers, seed=r.seed, id_prefix=r.prefix, days=60,
                       start=dt.datetime(2026, 1, 1, tzinfo=UTC), quiet=True, ledger="none",
                       write_ground_truth=False, settings=settings)
    assert cl.inserts >= r.customers and sum(cl.updates.values()) > 0 and cl.deletes > 0
    live = r.events(duration=30, **LIVE)
    assert live.web.duplicates and live.web.malformed and live.web.late and live.purchases.valid
    wait_flink_consumed(settings, r.sink)

    # every record of the past run is beyond the allowed lateness: check where the watermark is
    past_start = dt.datetime(2002, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=int(r.key, 16) % (17 * 525_600))
    # (the REST metrics are refreshed every ~10 s, and a job restarted recently starts from no watermark)
    live_start = live.min_event_ms
    deadline = time.monotonic() + 90
    while min((marks := job_watermarks(settings)).values(), default=NO_WATERMARK) < live_start:
        assert time.monotonic() < deadline, f"job watermark {marks} still before this run's events ({live_start})"
        time.sleep(2)
    past = r.events(mode="backfill", start=past_start, days=3, count=500,
                    duplicate_rate=0.02, malformed_rate=0.02, late_rate=0.02, late_delay_s=300)
    assert past.valid == 500
    assert_pipeline_matches(r, [r.ledgers[0]], past_ledger=past, cl=cl)


def test_killing_taskmanager_and_cdc_sink_mid_run_loses_and_duplicates_nothing(job, tmp_path):
    settings = job
    sup = Supervisor(settings)
    r = Run(settings, tmp_path)
    before = {name: sup.info(name) for name in ("flink-taskmanager", "cdc-sink")}
    assert all(b and b["statename"] == "RUNNING" for b in before.values()), before
    jid = flink_rest.running_job(settings)["jid"]
    result: dict = {}

    def produce():
        try:
            result["ledger"] = r.events(duration=45, **LIVE)
        except BaseException as exc:   # noqa: BLE001 - re-raised in the test thread
            result["error"] = exc
    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(15)       # past at least one completed checkpoint, raw rows flowing through CDC
    killed_at = int(time.time() * 1000)
    for info in before.values():
        os.kill(info["pid"], signal.SIGKILL)
    # customer inserts/updates/deletes while the sink is down (supervisord may restart it meanwhile)
    cl = run_customers(customers=r.customers, seed=r.seed, id_prefix=r.prefix, days=60,
                       start=dt.datetime(2026, 1, 1, tzinfo=UTC), quiet=True, ledger="none",
                       write_ground_truth=False, settings=settings)
    assert cl.inserts >= r.customers and sum(cl.updates.values()) > 0 and cl.deletes > 0
    up = run_stack("up", check=False)
    deadline = time.monotonic() + 90    # `up` may find them already restarted by supervisord, still STARTING
    while any((sup.info(name) or {}).get("statename") != "RUNNING" for name in before) and time.monotonic() < deadline:
        time.sleep(1)
    after = {name: sup.info(name) for name in before}
    for name in before:
        assert after[name]["statename"] == "RUNNING" and after[name]["pid"] != before[name]["pid"], (
            name, up.stdout[-2000:], up.stderr[-2000:])
    producer.join()
    if "error" in result:
        raise result["error"]
    ledger = result["ledger"]
    assert ledger.web.duplicates and ledger.web.malformed and ledger.web.late
    assert_pipeline_matches(r, [r.ledgers[0]], cl=cl)
    jid_after, failures = job_failures_since(settings, killed_at)
    assert jid_after == jid and failures, "the job did not fail over: the kill was not observed"  # same job, restored

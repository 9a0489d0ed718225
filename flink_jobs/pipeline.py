"""The streaming job's logic as functions that return Flink SQL: parsing and validation (with a
dead-letter reason for every bad record), lateness classification, deduplication and the windowed
aggregates. No Python UDFs (TaskManagers need no Python workers): each record is parsed once, by
the Java scalar functions of flink_jobs/udf (PARSE_WEB_EVENT / PARSE_ORDER return a ROW of the
parsed fields and the dead-letter reason; EVENT_TIME gives the sources' rowtime). The same functions
run against Kafka in production and against small in-memory/file inputs in the tests.

Semantics (asserted exactly by flink_jobs/tests and tests/integration/test_flink_job.py):

* Event time: `event_time` / `order_time` is epoch milliseconds (a JSON integer, what the simulators
  send, or a string of digits) or an ISO-8601 UTC string in Zulu form ("2026-11-22T10:15:30.123Z",
  fraction optional). Any other form, e.g. a numeric offset ("...+00:00", which the simulators use
  as their `wrong_type` malformed record) or a local time without zone, is invalid.
* Watermark: max event time seen minus OUT_OF_ORDERNESS (5 s), per source topic (Kafka: per
  partition, idle partitions excluded after an idle timeout; the minimum over the source's parallel
  instances once the records meet after the deduplication's exchange). The sources declare it
  shifted by the allowed lateness (see WATERMARK_DELAY): the window operators then close a window
  exactly when the lateness rule below says so. When no events arrive, a clock source inside the job
  (CLOCK, wall-clock time, joined in before the deduplication) moves it on: its watermark is the
  minimum with the topics' as long as they have data, and alone once their partitions are idle
  (`table.exec.source.idle-timeout`), so windows close on time in quiet periods too.
* Allowed lateness: an event belongs to the 1-minute tumbling window [start, start + 1 min). It is
  *on time* while the watermark it is processed under has not passed window end + ALLOWED_LATENESS
  (30 s); then it counts in its window. Otherwise it is *late*: it is still written to the raw table,
  and counted in realtime.late_events_1m for its window, but it does not change the aggregates.
* Emission: a window's row of web_metrics_1m, order_metrics_1m and active_sessions is written
  **once**, final, when the watermark passes window end + ALLOWED_LATENESS (event time: max event
  time >= window end + 35 s), not updated after every event.
* Deduplication: first occurrence wins, per event_id / order_id (processing order), over a state
  TTL of DEDUP_TTL; raw tables additionally upsert by primary key, so a duplicate never adds a row.
* Bad records (not JSON, not an object, missing/null required field, wrong JSON type, bad UUID,
  unknown event_type/order_status, bad timestamp, ...) go to the `dead_letter` topic with the
  reason and the source topic/partition/offset. Nothing is dropped silently. The rules and their
  order are in flink_jobs/udf (Records.java): the first failing rule names the reason.
* web_metrics_1m per (window, country, device_type): page_views = page_view events, product_views
  = product_view, add_to_carts = add_to_cart, checkouts = checkout_start (entering checkout; paid
  orders are in order_metrics_1m), sessions = distinct session_id, unique_customers = distinct
  customer_id.
* order_metrics_1m per (window of order_time, shipping_country, payment_method) counts **completed
  orders only** (cancelled and refunded orders are kept in raw.purchase_events but are not revenue):
  orders = count, revenue = sum(total_amount), items = sum of item quantities, avg_order_value =
  revenue / orders rounded half-up to 2 decimals. Amounts are summed as-is, whatever the currency.
* active_sessions: sliding windows of 5 minutes every minute: distinct sessions/customers with an
  on-time web event in [window_start, window_start + 5 min).
* Late events: one row per late event in realtime.late_events (its key, source topic, window), an
  idempotent upsert; the view realtime.late_events_1m counts them per (1-minute window, source).
* Replay (after an upgrade whose state the old checkpoint cannot restore; deploy.py decides it):
  the sources start at offsets rewound before the old job's committed ones. Records below the
  committed offsets were processed by the old job: they upsert their raw rows again (no change) but
  send no dead letter and write no late-event row a second time. The aggregates write only windows
  that start at or after `aggregate_from`, a minute early enough that every window still open in the
  old job is recomputed from all its events; the windows before it keep the rows the old job wrote.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from platform_common import contracts

WINDOW = "INTERVAL '1' MINUTE"
OUT_OF_ORDERNESS_SECONDS = 5
ALLOWED_LATENESS_SECONDS = 30
SLIDE_SIZE_MINUTES = 5          # active_sessions window size; slide is 1 minute
MAX_ITEMS = 20                  # line items per order (more goes to dead_letter; Records.MAX_ITEMS)
DEDUP_TTL = "6 h"               # state TTL of the deduplication (and of the late-events counts)
JOB_NAME = contracts.FLINK_JOB_NAME
# the state layout of the job's plan: raise it when a change to the SQL makes the operators' state
# incompatible with a checkpoint of the previous version (deploy.py then replays, see Replay)
LAYOUT = 2
TOPICS = {"web": contracts.WEB_EVENTS_TOPIC, "orders": contracts.PURCHASE_EVENTS_TOPIC}

# The watermark the sources declare: OUT_OF_ORDERNESS + ALLOWED_LATENESS + 1 ms behind the max event
# time. A window operator treats [start, end) as closed once watermark >= end - 1 ms, i.e. once
# max - 5 s >= end + 30 s: exactly when the allowed-lateness rule makes its events late.
WATERMARK_DELAY = f"INTERVAL '{OUT_OF_ORDERNESS_SECONDS + ALLOWED_LATENESS_SECONDS}.001' SECOND"

# the Java scalar functions (flink_jobs/udf), registered by register_functions()
UDF_DIR = Path(__file__).resolve().parent / "udf"
UDF_JAR = UDF_DIR / "target" / "churn-flink-udf.jar"
UDF_PACKAGE = "io.github.churnplatform.flink.udf"
FUNCTIONS = {"PARSE_WEB_EVENT": "ParseWebEvent", "PARSE_ORDER": "ParseOrder", "EVENT_TIME": "EventTime"}

WEB_FIELDS = ("event_id", "customer_id", "session_id", "event_type", "page_url", "product_id", "search_query",
              "device_type", "country", "utm_source")
ORDER_FIELDS = ("order_id", "customer_id", "session_id", "items", "item_count", "total_amount", "currency",
                "payment_method", "order_status", "shipping_country")
FIELD_TYPES = {"item_count": "INT", "total_amount": "DECIMAL(12, 2)"}   # the others are STRING (ParseOrder.TYPE)


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Replay:
    """Where an upgraded job starts and what it has already done (see the module docstring).

    start / done: topic -> partition -> offset; aggregate_from: 'YYYY-MM-DD HH:MM:00' (UTC)."""
    start: dict[str, dict[int, int]] = field(default_factory=dict)
    done: dict[str, dict[int, int]] = field(default_factory=dict)
    aggregate_from: str = "1970-01-01 00:00:00"

    def to_json(self) -> str:
        return json.dumps({"start": self.start, "done": self.done, "aggregate_from": self.aggregate_from})

    @classmethod
    def from_json(cls, text: str) -> Replay:
        data = json.loads(text)
        offsets = lambda d: {t: {int(p): int(o) for p, o in parts.items()} for t, parts in d.items()}  # noqa: E731
        return cls(offsets(data["start"]), offsets(data["done"]), data["aggregate_from"])

    def replayed_expr(self, topic: str) -> str:
        """SQL: TRUE for a record the old job processed (below its committed offset)."""
        done = self.done.get(topic) or {}
        terms = [f"(src_partition = {p} AND src_offset < {o})" for p, o in sorted(done.items()) if o > 0]
        return "(" + " OR ".join(terms) + ")" if terms else "FALSE"

    def startup_options(self, topic: str) -> str:
        """The Kafka source's startup options: the replay's offsets, or the committed ones."""
        start = self.start.get(topic)
        if not start:
            return "'scan.startup.mode' = 'group-offsets'"
        offsets = ";".join(f"partition:{p},offset:{o}" for p, o in sorted(start.items()))
        return f"'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = {_q(offsets)}"


def function_ddls() -> list[str]:
    """CREATE TEMPORARY FUNCTION for each Java function (its jar must be on the classpath)."""
    return [f"CREATE TEMPORARY FUNCTION IF NOT EXISTS {name} AS {_q(UDF_PACKAGE + '.' + cls)} LANGUAGE JAVA"
            for name, cls in FUNCTIONS.items()]


# -- sources ----------------------------------------------------------------------------------
def source_columns(time_field: str) -> str:
    """The computed columns and watermark every source table of the job declares."""
    # never NULL (a rowtime may not be): unparseable times become the epoch, which cannot move the
    # watermark (a maximum); those records are invalid anyway and go to the dead-letter topic.
    # EVENT_TIME parses the record; PARSE_* (next operator, same thread) reuses that parse.
    return (f"  event_ts AS COALESCE(EVENT_TIME(payload, {_q(time_field)}), TIMESTAMP '1970-01-01 00:00:00.000'),\n"
            f"  proc_time AS PROCTIME(),\n"
            f"  WATERMARK FOR event_ts AS event_ts - {WATERMARK_DELAY}")


def kafka_source_ddl(name: str, topic: str, time_field: str, bootstrap: str, group_id: str,
                     replay: Replay = Replay()) -> str:
    # format raw: the value as one string, so a record that is not valid JSON still reaches the
    # validation (and the dead-letter topic) instead of failing or being skipped by a JSON format
    return f"""CREATE TEMPORARY TABLE {name} (
  payload STRING,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
{source_columns(time_field)}
) WITH (
  'connector' = 'kafka',
  'topic' = {_q(topic)},
  'properties.bootstrap.servers' = {_q(bootstrap)},
  'properties.group.id' = {_q(group_id)},
  'properties.auto.offset.reset' = 'earliest',
  'properties.isolation.level' = 'read_committed',
  {replay.startup_options(topic)},
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)"""


def clock_source_ddl(name: str) -> str:
    """Wall-clock ticks with the sources' watermark (see the module docstring, Watermark)."""
    # several rows a second, so every parallel instance of the generator emits some. `tick` is a random
    # one-character string, never NULL: the rows are invalid (reason IS NOT NULL) without the planner
    # knowing it in advance (a constant would let it prune the clock away, watermark and all)
    return f"""CREATE TEMPORARY TABLE {name} (
  tick STRING,
  event_ts AS CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)),
  proc_time AS PROCTIME(),
  WATERMARK FOR event_ts AS event_ts - {WATERMARK_DELAY}
) WITH ('connector' = 'datagen', 'rows-per-second' = '10', 'fields.tick.kind' = 'random',
  'fields.tick.length' = '1')"""


def with_clock(parsed: str, clock: str, fields: tuple[str, ...]) -> str:
    """A parsed view's rows plus the clock's ticks, as rows that are never valid (reason = the tick):
    the deduplication drops them, the watermark they carry stays."""
    nulls = ", ".join(f"CAST(NULL AS {FIELD_TYPES.get(f, 'STRING')}) AS {f}" for f in fields)
    return f"""SELECT * FROM {parsed}
UNION ALL
SELECT tick AS reason, CAST(NULL AS STRING) AS payload, CAST(NULL AS STRING) AS src_topic,
  CAST(NULL AS INT) AS src_partition, CAST(NULL AS BIGINT) AS src_offset, event_ts, proc_time,
  FALSE AS replayed, {nulls}
FROM {clock}"""


# -- views: parse, classify, deduplicate ------------------------------------------------------
def window_start(ts: str = "event_ts") -> str:
    return f"FLOOR({ts} TO MINUTE)"


def late_expr(ts: str = "event_ts") -> str:
    # late once its 1-minute window is closed: watermark >= window end - 1 ms (the sources' watermark
    # is already ALLOWED_LATENESS behind, see WATERMARK_DELAY); the same test the window operators use
    return (f"COALESCE({window_start(ts)} + {WINDOW} <= CURRENT_WATERMARK({ts}) + INTERVAL '0.001' SECOND, "
            f"FALSE)")


def _parsed_sql(source: str, function: str, fields: tuple[str, ...], replayed: str) -> str:
    # the function's ROW is computed once in the inner query; the outer one only picks its fields
    picked = ", ".join(f"p.{f} AS {f}" for f in fields)
    return f"""SELECT p.reason AS reason, payload, src_topic, src_partition, src_offset, event_ts, proc_time,
  {replayed} AS replayed, {picked}
FROM (SELECT *, {function}(payload) AS p FROM {source})"""


def web_parsed_sql(source: str, replay: Replay = Replay()) -> str:
    return _parsed_sql(source, "PARSE_WEB_EVENT", WEB_FIELDS, replay.replayed_expr(TOPICS["web"]))


def order_parsed_sql(source: str, replay: Replay = Replay()) -> str:
    return _parsed_sql(source, "PARSE_ORDER", ORDER_FIELDS, replay.replayed_expr(TOPICS["orders"]))


def dead_letter_sql(parsed: str) -> str:
    # a replayed record's dead letter was sent by the job that processed it first
    return f"""SELECT src_topic AS source_topic, src_partition AS source_partition, src_offset AS source_offset,
  reason, payload, CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS failed_at
FROM {parsed} WHERE reason IS NOT NULL AND NOT replayed"""


def dedup_sql(parsed: str, key: str) -> str:
    """Valid records, first occurrence per key (processing order), with their lateness (is_late).

    Runs as Deduplicate(keep=FirstRow, order=PROCTIME), which emits inserts only; Flink 2.0.2's
    planner still declares the Top-1 Rank it comes from as updating (I,UA,D), so the window
    aggregates downstream use their retracting accumulators (no retraction ever arrives).

    is_late is computed after the deduplication's exchange: there the watermark is the minimum over
    all source subtasks (all partitions of the topic), as with one source instance; the window
    operators downstream are never ahead of it, so an on-time event always finds its window open."""
    return f"""SELECT *, {late_expr()} AS is_late FROM (
  SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY proc_time ASC) AS rn
    FROM {parsed} WHERE reason IS NULL
  ) WHERE rn = 1
)"""


# -- sinks' queries ---------------------------------------------------------------------------
def raw_web_sql(deduped: str) -> str:
    return f"""SELECT event_id, customer_id, session_id, event_type, page_url, product_id, search_query,
  device_type, country, utm_source, CAST(event_ts AS TIMESTAMP(3)) AS event_time,
  src_partition AS kafka_partition, src_offset AS kafka_offset
FROM {deduped}"""


def raw_order_sql(deduped: str) -> str:
    return f"""SELECT order_id, customer_id, session_id, CAST(event_ts AS TIMESTAMP(3)) AS order_time, items,
  item_count, total_amount, currency, payment_method, order_status, shipping_country,
  src_partition AS kafka_partition, src_offset AS kafka_offset
FROM {deduped}"""


def _tumble(deduped: str) -> str:
    return f"TABLE(TUMBLE(TABLE {deduped}, DESCRIPTOR(event_ts), {WINDOW}))"


def _counted(replay: Replay) -> str:
    """The window rows the aggregates count: on-time events, in windows an upgrade's replay holds whole."""
    return f"NOT is_late AND window_start >= TIMESTAMP {_q(replay.aggregate_from)}"


def web_metrics_sql(deduped: str, replay: Replay = Replay()) -> str:
    # a window TVF aggregate: one final row per (window, country, device_type) when the window closes
    return f"""SELECT window_start, window_end, country, device_type,
  SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS page_views,
  SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS product_views,
  SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS add_to_carts,
  SUM(CASE WHEN event_type = 'checkout_start' THEN 1 ELSE 0 END) AS checkouts,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT customer_id) AS unique_customers
FROM {_tumble(deduped)}
WHERE {_counted(replay)}
GROUP BY window_start, window_end, country, device_type"""


def order_metrics_sql(deduped: str, replay: Replay = Replay()) -> str:
    return f"""SELECT window_start, window_end, shipping_country AS country, payment_method,
  COUNT(*) AS orders, CAST(SUM(total_amount) AS DECIMAL(14, 2)) AS revenue, SUM(CAST(item_count AS BIGINT)) AS items,
  CAST(SUM(total_amount) / COUNT(*) AS DECIMAL(12, 2)) AS avg_order_value
FROM {_tumble(deduped)}
WHERE order_status = 'completed' AND {_counted(replay)}
GROUP BY window_start, window_end, shipping_country, payment_method"""


def active_sessions_sql(deduped: str, replay: Replay = Replay()) -> str:
    size = f"INTERVAL '{SLIDE_SIZE_MINUTES}' MINUTE"
    # HOP windows share 1-minute slices: each event updates one slice; a window's row is merged from
    # its five slices when it closes
    return f"""SELECT window_start, window_end,
  COUNT(DISTINCT session_id) AS active_sessions, COUNT(DISTINCT customer_id) AS active_customers
FROM TABLE(HOP(TABLE {deduped}, DESCRIPTOR(event_ts), {WINDOW}, {size}))
WHERE {_counted(replay)}
GROUP BY window_start, window_end"""


def late_events_sql(deduped: str, key: str) -> str:
    # one row per late event, upserted by (source, key): idempotent, so a replay cannot lose or double
    # a count (realtime.late_events_1m counts them); no state
    return f"""SELECT src_topic AS source, {key} AS event_key, {window_start('CAST(event_ts AS TIMESTAMP(3))')} AS window_start,
  CAST(event_ts AS TIMESTAMP(3)) AS event_time, src_partition AS kafka_partition, src_offset AS kafka_offset
FROM {deduped} WHERE is_late AND NOT replayed"""

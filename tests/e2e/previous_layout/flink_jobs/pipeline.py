"""The streaming job's logic as functions that return Flink SQL: parsing and validation (with a
dead-letter reason for every bad record), lateness classification, deduplication and the windowed
aggregates. Pure SQL (no Python UDFs), so TaskManagers need no Python workers, and the same
functions run against Kafka in production and against small in-memory/file inputs in the tests.

Semantics (asserted exactly by flink_jobs/tests and tests/integration/test_flink_job.py):

* Event time: `event_time` / `order_time` is epoch milliseconds (a JSON integer, what the simulators
  send, or a string of digits) or an ISO-8601 UTC string in Zulu form ("2026-11-22T10:15:30.123Z",
  fraction optional). Any other form, e.g. a numeric offset ("...+00:00", which the simulators use
  as their `wrong_type` malformed record) or a local time without zone, is invalid.
* Watermark: max event time seen minus OUT_OF_ORDERNESS (5 s), per source topic (Kafka: per
  partition, idle partitions excluded after an idle timeout).
* Allowed lateness: an event belongs to the 1-minute tumbling window [start, start + 1 min). It is
  *on time* while the watermark it is processed under has not passed window end + ALLOWED_LATENESS
  (30 s); then it updates its window (an upsert of the window's row). Otherwise it is *late*: it is
  still written to the raw table, and counted in realtime.late_events_1m for its window, but it does
  not change the aggregates.
* Deduplication: first occurrence wins, per event_id / order_id (processing order), over a state
  TTL of DEDUP_TTL; raw tables additionally upsert by primary key, so a duplicate never adds a row.
* Bad records (not JSON, not an object, missing/null required field, wrong JSON type, bad UUID,
  unknown event_type/order_status, bad timestamp, ...) go to the `dead_letter` topic with the
  reason and the source topic/partition/offset. Nothing is dropped silently.
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
* late_events_1m per (1-minute window of the late event's time, source topic): distinct late events.
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW = "INTERVAL '1' MINUTE"
OUT_OF_ORDERNESS_SECONDS = 5
ALLOWED_LATENESS_SECONDS = 30
SLIDE_SIZE_MINUTES = 5          # active_sessions window size; slide is 1 minute
MAX_ITEMS = 20                  # line items per order the SQL can sum (more goes to dead_letter)
DEDUP_TTL = "6 h"               # state TTL: dedup keys and idle window keys live this long
JOB_NAME = "churn-streaming"

WEB_EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
                   "checkout_start", "checkout_success", "login", "logout")
ORDER_STATUSES = ("completed", "cancelled", "refunded")
UUID_RE = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ISO_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(_q(v) for v in values) + ")"


# -- JSON field access ------------------------------------------------------------------------
def jv(field: str) -> str:
    return f"JSON_VALUE(payload, '$.{field}')"


def _wrapped(field: str) -> str:
    # the field as JSON, wrapped in an array: '["text"]', '[12.5]', '[null]'; NULL when missing
    return f"JSON_QUERY(payload, '$.{field}' WITH ARRAY WRAPPER)"


def is_string(field: str) -> str:
    return f"{_wrapped(field)} LIKE '[\"%'"


def is_number(field: str) -> str:
    return f"REGEXP({_wrapped(field)}, '^\\[-?[0-9]+(\\.[0-9]+)?\\]$')"


def is_absent(field: str) -> str:
    # a missing key gives NULL (lax mode), an explicit null '[null]'
    return f"COALESCE({_wrapped(field)}, '[]') IN ('[]', '[null]')"


def ts_expr(field: str) -> str:
    """TIMESTAMP(3) (UTC) from an ISO-8601 UTC string or epoch millis; NULL when neither."""
    raw = jv(field)
    iso = f"CAST(REPLACE(REPLACE({raw}, 'Z', ''), 'T', ' ') AS TIMESTAMP(3))"
    millis = f"CAST(TO_TIMESTAMP_LTZ(CAST({raw} AS BIGINT), 3) AS TIMESTAMP(3))"
    return (f"CASE WHEN REGEXP({raw}, '^[0-9]{{10,15}}$') THEN {millis} "
            f"WHEN REGEXP({raw}, {_q(ISO_RE)}) THEN {iso} END")


# -- validation: the first failing rule names the reason --------------------------------------
@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "string"        # string | number | timestamp
    required: bool = True
    pattern: str | None = None  # a regex the string must match
    pattern_reason: str = ""


def _rules(fields: list[Field], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    rules = [("payload IS NULL OR CHAR_LENGTH(TRIM(payload)) = 0", "'empty record'"),
             ("NOT (payload IS JSON)", "'invalid JSON'"),
             ("NOT (payload IS JSON OBJECT)", "'invalid JSON: not an object'")]
    for f in fields:
        if f.required:
            rules.append((is_absent(f.name), _q(f"missing required field: {f.name}")))
        present = f"NOT ({is_absent(f.name)})"
        if f.kind in ("string", "timestamp"):
            check = f"NOT ({is_string(f.name)})"
            if f.kind == "timestamp":
                check = f"NOT ({is_string(f.name)} OR {is_number(f.name)})"
            rules.append((f"{present} AND {check}",
                          _q(f"wrong type for {f.name}: expected "
                             + ("string" if f.kind == "string" else "ISO-8601 string or epoch millis"))))
        else:
            rules.append((f"{present} AND NOT ({is_number(f.name)})", _q(f"wrong type for {f.name}: expected number")))
        if f.pattern:
            rules.append((f"{present} AND NOT REGEXP({jv(f.name)}, {_q(f.pattern)})",
                          _q(f"invalid {f.name}: {f.pattern_reason}")))
        if f.kind == "timestamp":
            rules.append((f"({ts_expr(f.name)}) IS NULL",
                          _q(f"invalid {f.name}: expected ISO-8601 UTC or epoch millis")))
    return rules + extra


def _reason(rules: list[tuple[str, str]]) -> str:
    return "CASE " + " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in rules) + " END"


WEB_FIELDS = [
    Field("event_id", pattern=UUID_RE, pattern_reason="not a UUID"),
    Field("customer_id"), Field("session_id"), Field("event_type"),
    Field("page_url", required=False), Field("product_id", required=False),
    Field("search_query", required=False),
    Field("device_type"),
    Field("country", pattern="^[A-Z]{2}$", pattern_reason="expected an ISO 3166 alpha-2 code"),
    Field("utm_source", required=False),
    Field("event_time", kind="timestamp"),
]

ORDER_FIELDS = [
    Field("order_id", pattern=UUID_RE, pattern_reason="not a UUID"),
    Field("customer_id"), Field("session_id", required=False),
    Field("order_time", kind="timestamp"),
    Field("total_amount", kind="number"),
    Field("currency", pattern="^[A-Z]{3}$", pattern_reason="expected an ISO 4217 code"),
    Field("payment_method"), Field("order_status"),
    Field("shipping_country", pattern="^[A-Z]{2}$", pattern_reason="expected an ISO 3166 alpha-2 code"),
]


def _items_rules() -> list[tuple[str, str]]:
    items = "JSON_QUERY(payload, '$.items' RETURNING ARRAY<STRING>)"
    n = f"CARDINALITY({items})"
    qs = "JSON_QUERY(payload, '$.items[*].quantity')"
    prices = "JSON_QUERY(payload, '$.items[*].unit_price')"
    pids = "JSON_QUERY(payload, '$.items[*].product_id')"
    arr = lambda path: f"CARDINALITY(JSON_QUERY(payload, '$.items[*].{path}' RETURNING ARRAY<STRING>))"  # noqa: E731
    return [
        (is_absent("items"), "'missing required field: items'"),
        (f"NOT REGEXP({_wrapped('items')}, '^\\[\\[')", "'wrong type for items: expected array'"),
        (f"{n} = 0", "'invalid items: empty'"),
        (f"{n} > {MAX_ITEMS}", _q(f"invalid items: more than {MAX_ITEMS} line items")),
        (f"{arr('product_id')} <> {n} OR NOT REGEXP({pids}, '^\\[\"[^\"]*\"(,\"[^\"]*\")*\\]$')",
         "'invalid items: every item needs product_id (string)'"),
        (f"{arr('quantity')} <> {n} OR NOT REGEXP({qs}, '^\\[[1-9][0-9]{{0,5}}(,[1-9][0-9]{{0,5}})*\\]$')",
         "'invalid items: every item needs quantity (positive integer)'"),
        (f"{arr('unit_price')} <> {n} OR NOT REGEXP({prices}, '^\\[[0-9]+(\\.[0-9]+)?(,[0-9]+(\\.[0-9]+)?)*\\]$')",
         "'invalid items: every item needs unit_price (non-negative number)'"),
    ]


def item_count_expr() -> str:
    qs = "JSON_QUERY(payload, '$.items[*].quantity' RETURNING ARRAY<STRING>)"
    return " + ".join(f"COALESCE(CAST({qs}[{i}] AS INT), 0)" for i in range(1, MAX_ITEMS + 1))


def web_reason() -> str:
    extra = [(f"{jv('event_type')} NOT IN {_in(WEB_EVENT_TYPES)}",
              f"CONCAT('unknown event_type: ', {jv('event_type')})")]
    return _reason(_rules(WEB_FIELDS, extra))


def order_reason() -> str:
    extra = [(f"{jv('order_status')} NOT IN {_in(ORDER_STATUSES)}",
              f"CONCAT('unknown order_status: ', {jv('order_status')})"),
             (f"ABS(CAST({jv('total_amount')} AS DOUBLE)) >= 1e10", "'invalid total_amount: out of range'")]
    return _reason(_rules(ORDER_FIELDS, _items_rules() + extra))


# -- sources ----------------------------------------------------------------------------------
def source_columns(time_field: str) -> str:
    """The computed columns and watermark every source table of the job declares."""
    # never NULL (a rowtime may not be): unparseable times become the epoch, which cannot move the
    # watermark (a maximum); those records are invalid anyway and go to the dead-letter topic
    return (f"  event_ts AS COALESCE({ts_expr(time_field)}, TIMESTAMP '1970-01-01 00:00:00.000'),\n"
            f"  proc_time AS PROCTIME(),\n"
            f"  WATERMARK FOR event_ts AS event_ts - INTERVAL '{OUT_OF_ORDERNESS_SECONDS}' SECOND")


def kafka_source_ddl(name: str, topic: str, time_field: str, bootstrap: str, group_id: str) -> str:
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
  'scan.startup.mode' = 'group-offsets',
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)"""


# -- views: parse, classify, deduplicate ------------------------------------------------------
def window_start(ts: str = "event_ts") -> str:
    return f"FLOOR({ts} TO MINUTE)"


def late_expr(ts: str = "event_ts") -> str:
    # late once the watermark has passed the event's window end plus the allowed lateness
    return (f"COALESCE({window_start(ts)} + {WINDOW} + INTERVAL '{ALLOWED_LATENESS_SECONDS}' SECOND "
            f"<= CURRENT_WATERMARK({ts}), FALSE)")


def web_parsed_sql(source: str) -> str:
    return f"""SELECT
  {web_reason()} AS reason,
  payload, src_topic, src_partition, src_offset, event_ts, proc_time,
  {jv('event_id')} AS event_id, {jv('customer_id')} AS customer_id, {jv('session_id')} AS session_id,
  {jv('event_type')} AS event_type, {jv('page_url')} AS page_url, {jv('product_id')} AS product_id,
  {jv('search_query')} AS search_query, {jv('device_type')} AS device_type, {jv('country')} AS country,
  {jv('utm_source')} AS utm_source,
  {late_expr()} AS is_late
FROM {source}"""


def order_parsed_sql(source: str) -> str:
    return f"""SELECT
  {order_reason()} AS reason,
  payload, src_topic, src_partition, src_offset, event_ts, proc_time,
  {jv('order_id')} AS order_id, {jv('customer_id')} AS customer_id, {jv('session_id')} AS session_id,
  JSON_QUERY(payload, '$.items') AS items,
  CAST({jv('total_amount')} AS DECIMAL(12, 2)) AS total_amount,
  {jv('currency')} AS currency, {jv('payment_method')} AS payment_method, {jv('order_status')} AS order_status,
  {jv('shipping_country')} AS shipping_country,
  {late_expr()} AS is_late
FROM {source}"""


def dead_letter_sql(parsed: str) -> str:
    return f"""SELECT src_topic AS source_topic, src_partition AS source_partition, src_offset AS source_offset,
  reason, payload, CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS failed_at
FROM {parsed} WHERE reason IS NOT NULL"""


def dedup_sql(parsed: str, key: str) -> str:
    """Valid records, first occurrence per key (processing order): an append-only stream."""
    return f"""SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY proc_time ASC) AS rn
  FROM {parsed} WHERE reason IS NULL
) WHERE rn = 1"""


# -- sinks' queries ---------------------------------------------------------------------------
def raw_web_sql(deduped: str) -> str:
    return f"""SELECT event_id, customer_id, session_id, event_type, page_url, product_id, search_query,
  device_type, country, utm_source, CAST(event_ts AS TIMESTAMP(3)) AS event_time,
  src_partition AS kafka_partition, src_offset AS kafka_offset
FROM {deduped}"""


def raw_order_sql(deduped: str) -> str:
    return f"""SELECT order_id, customer_id, session_id, CAST(event_ts AS TIMESTAMP(3)) AS order_time, items,
  {item_count_expr()} AS item_count,
  total_amount, currency, payment_method, order_status, shipping_country,
  src_partition AS kafka_partition, src_offset AS kafka_offset
FROM {deduped}"""


def web_metrics_sql(deduped: str) -> str:
    # every aggregate groups by exactly its sink table's primary key (window_end follows from it)
    return f"""SELECT window_start, window_start + {WINDOW} AS window_end, country, device_type,
  SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS page_views,
  SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS product_views,
  SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS add_to_carts,
  SUM(CASE WHEN event_type = 'checkout_start' THEN 1 ELSE 0 END) AS checkouts,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT customer_id) AS unique_customers
FROM (SELECT {window_start('CAST(event_ts AS TIMESTAMP(3))')} AS window_start, *
      FROM {deduped} WHERE NOT is_late)
GROUP BY window_start, country, device_type"""


def order_metrics_sql(deduped: str) -> str:
    return f"""SELECT window_start, window_start + {WINDOW} AS window_end, country, payment_method,
  COUNT(*) AS orders, CAST(SUM(total_amount) AS DECIMAL(14, 2)) AS revenue, SUM(item_count) AS items,
  CAST(SUM(total_amount) / COUNT(*) AS DECIMAL(12, 2)) AS avg_order_value
FROM (SELECT {window_start('CAST(event_ts AS TIMESTAMP(3))')} AS window_start, shipping_country AS country,
             payment_method, total_amount, CAST({item_count_expr()} AS BIGINT) AS item_count
      FROM {deduped} WHERE order_status = 'completed' AND NOT is_late)
GROUP BY window_start, country, payment_method"""


def active_sessions_sql(deduped: str) -> str:
    size = f"INTERVAL '{SLIDE_SIZE_MINUTES}' MINUTE"
    # each event lands in the SLIDE_SIZE_MINUTES sliding windows that contain its minute: a UNION ALL
    # of stateless projections (an UNNEST of a constant array would plan as a stateful join)
    minute = window_start("CAST(event_ts AS TIMESTAMP(3))")
    branches = "\n      UNION ALL\n".join(
        f"      SELECT {minute} - INTERVAL '{k}' MINUTE AS window_start, session_id, customer_id "
        f"FROM {deduped} WHERE NOT is_late" for k in range(SLIDE_SIZE_MINUTES))
    # grouped by exactly the sink's primary key, so the aggregate's updates are plain upserts
    return f"""SELECT window_start, window_end,
  COUNT(DISTINCT session_id) AS active_sessions, COUNT(DISTINCT customer_id) AS active_customers
FROM (SELECT window_start, window_start + {size} AS window_end, session_id, customer_id FROM (
{branches}))
GROUP BY window_start, window_end"""


def late_events_sql(deduped: str, source: str) -> str:
    return f"""SELECT window_start, source, COUNT(*) AS late_events
FROM (SELECT {window_start('CAST(event_ts AS TIMESTAMP(3))')} AS window_start, {_q(source)} AS source
      FROM {deduped} WHERE is_late)
GROUP BY window_start, source"""

"""The streaming job: Kafka (web_events, purchase_events) -> validation, dead letters, dedupe,
windows -> PostgreSQL (raw.*, realtime.*) and the `dead_letter` topic.

Submitted to a Flink session cluster by flink_jobs/deploy.py (`make up`, `make flink-submit`) with the
PyFlink client:  flink run -d --python flink_jobs/streaming_job.py
The Python code only builds the plan: every operator is Flink SQL, so the cluster runs no Python.

Configuration comes from the environment (the stack passes it from .env):
  FLINK_JOB_KAFKA_BOOTSTRAP_SERVERS   Kafka as the TaskManagers reach it
  FLINK_JOB_POSTGRES_URL              jdbc:postgresql://host:port/db as the TaskManagers reach it
  POSTGRES_STREAM_USER / POSTGRES_STREAM_PASSWORD   the least-privilege stream_writer role
  FLINK_JOB_REPLAY                    optional: an upgrade's replay (pipeline.Replay as JSON)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from flink_jobs import pipeline
from platform_common import contracts

RAW_WEB_COLUMNS = """event_id STRING, customer_id STRING, session_id STRING, event_type STRING, page_url STRING,
  product_id STRING, search_query STRING, device_type STRING, country STRING, utm_source STRING,
  event_time TIMESTAMP(3), kafka_partition INT, kafka_offset BIGINT, PRIMARY KEY (event_id) NOT ENFORCED"""
RAW_ORDER_COLUMNS = """order_id STRING, customer_id STRING, session_id STRING, order_time TIMESTAMP(3), items STRING,
  item_count INT, total_amount DECIMAL(12, 2), currency STRING, payment_method STRING, order_status STRING,
  shipping_country STRING, kafka_partition INT, kafka_offset BIGINT, PRIMARY KEY (order_id) NOT ENFORCED"""
WEB_METRICS_COLUMNS = """window_start TIMESTAMP(3), window_end TIMESTAMP(3), country STRING, device_type STRING,
  page_views BIGINT, product_views BIGINT, add_to_carts BIGINT, checkouts BIGINT, sessions BIGINT,
  unique_customers BIGINT, PRIMARY KEY (window_start, country, device_type) NOT ENFORCED"""
ORDER_METRICS_COLUMNS = """window_start TIMESTAMP(3), window_end TIMESTAMP(3), country STRING, payment_method STRING,
  orders BIGINT, revenue DECIMAL(14, 2), items BIGINT, avg_order_value DECIMAL(12, 2),
  PRIMARY KEY (window_start, country, payment_method) NOT ENFORCED"""
ACTIVE_SESSIONS_COLUMNS = """window_start TIMESTAMP(3), window_end TIMESTAMP(3), active_sessions BIGINT,
  active_customers BIGINT, PRIMARY KEY (window_start, window_end) NOT ENFORCED"""
LATE_EVENTS_COLUMNS = """source STRING, event_key STRING, window_start TIMESTAMP(3), event_time TIMESTAMP(3),
  kafka_partition INT, kafka_offset BIGINT, PRIMARY KEY (source, event_key) NOT ENFORCED"""
DEAD_LETTER_COLUMNS = """source_topic STRING, source_partition INT, source_offset BIGINT, reason STRING,
  payload STRING, failed_at TIMESTAMP(3)"""

# sink table name -> (columns, PostgreSQL table)
PG_SINKS = {
    "sink_raw_web_events": (RAW_WEB_COLUMNS, "raw.web_events"),
    "sink_raw_purchase_events": (RAW_ORDER_COLUMNS, "raw.purchase_events"),
    "sink_web_metrics_1m": (WEB_METRICS_COLUMNS, "realtime.web_metrics_1m"),
    "sink_order_metrics_1m": (ORDER_METRICS_COLUMNS, "realtime.order_metrics_1m"),
    "sink_active_sessions": (ACTIVE_SESSIONS_COLUMNS, "realtime.active_sessions"),
    "sink_late_events": (LATE_EVENTS_COLUMNS, "realtime.late_events"),
}


def register_views(t_env, web_source: str, order_source: str, replay: pipeline.Replay = pipeline.Replay(),
                   clock: str | None = None) -> None:
    """The job's intermediate views over two source tables (Kafka, or test inputs), and the clock
    source that moves event time on while they are idle (none in the tests: their inputs end)."""
    t_env.create_temporary_view("web_parsed", t_env.sql_query(pipeline.web_parsed_sql(web_source, replay)))
    t_env.create_temporary_view("orders_parsed", t_env.sql_query(pipeline.order_parsed_sql(order_source, replay)))
    for parsed, fields, key in (("web_parsed", pipeline.WEB_FIELDS, "event_id"),
                                ("orders_parsed", pipeline.ORDER_FIELDS, "order_id")):
        timed = f"({pipeline.with_clock(parsed, clock, fields)})" if clock else parsed
        t_env.create_temporary_view(parsed.replace("_parsed", "_deduped"),
                                    t_env.sql_query(pipeline.dedup_sql(timed, key)))


def queries(replay: pipeline.Replay = pipeline.Replay()) -> dict[str, str]:
    """sink table -> the query that feeds it (after register_views)."""
    return {
        "sink_raw_web_events": pipeline.raw_web_sql("web_deduped"),
        "sink_raw_purchase_events": pipeline.raw_order_sql("orders_deduped"),
        "sink_web_metrics_1m": pipeline.web_metrics_sql("web_deduped", replay),
        "sink_order_metrics_1m": pipeline.order_metrics_sql("orders_deduped", replay),
        "sink_active_sessions": pipeline.active_sessions_sql("web_deduped", replay),
        "sink_late_events": (pipeline.late_events_sql("web_deduped", "event_id") + "\nUNION ALL\n"
                             + pipeline.late_events_sql("orders_deduped", "order_id")),
        "sink_dead_letter": (pipeline.dead_letter_sql("web_parsed") + "\nUNION ALL\n"
                             + pipeline.dead_letter_sql("orders_parsed")),
    }


def configure(t_env, checkpointing: bool = True, udf_jar: str | Path | None = None) -> None:
    """Job settings, and the Java functions registered (before any DDL uses them).

    udf_jar: add the functions' jar to the job (`pipeline.jars`, for a local mini cluster); the
    stack's cluster has it in its lib dir instead (stack/flink.py), on the client's classpath too."""
    conf = t_env.get_config()
    settings = {
        "pipeline.name": pipeline.JOB_NAME,
        "table.local-time-zone": "UTC",
        # the deduplication's keys (and the late-event counts) live this long; the window
        # aggregates do not use it: their state is dropped when the watermark closes the window
        "table.exec.state.ttl": pipeline.DEDUP_TTL,
        # a partition without data for this long no longer holds the watermark back
        "table.exec.source.idle-timeout": "30 s",
        # each sink gets a stream keyed by its primary key (window aggregates grouped by exactly that
        # key, raw rows deduplicated by it): updates are plain upserts, never a DELETE + INSERT pair
        # from the materializer (the stream role has no DELETE privilege, by design)
        "table.exec.sink.upsert-materialize": "NONE",
        "execution.checkpointing.interval": "10 s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.min-pause": "2 s",
        # state on RocksDB (off-heap managed memory, on disk): the dedup keys of DEDUP_TTL at 10k
        # events/s do not fit a 2 GiB heap; incremental checkpoints upload only new SST files
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": "true",
        # both cores: the Kafka sources split their partitions, the keyed operators their keys
        "parallelism.default": "2",
    }
    for key, value in settings.items():
        if checkpointing or not key.startswith("execution.checkpointing."):
            conf.set(key, value)
    if udf_jar:
        conf.set("pipeline.jars", Path(udf_jar).resolve().as_uri())
    for ddl in pipeline.function_ddls():
        t_env.execute_sql(ddl)


def sink_ddls(env: dict[str, str]) -> list[str]:
    url = env["FLINK_JOB_POSTGRES_URL"]
    # strings into uuid/jsonb columns; a batch of upserts as multi-row statements
    url += ("&" if "?" in url else "?") + "stringtype=unspecified&reWriteBatchedInserts=true"
    ddls = []
    for name, (columns, table) in PG_SINKS.items():
        ddls.append(f"""CREATE TEMPORARY TABLE {name} ({columns}) WITH (
  'connector' = 'jdbc', 'url' = {pipeline._q(url)}, 'table-name' = {pipeline._q(table)},
  'username' = {pipeline._q(env['POSTGRES_STREAM_USER'])}, 'password' = {pipeline._q(env['POSTGRES_STREAM_PASSWORD'])},
  'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '5000', 'sink.max-retries' = '5'
)""")
    ddls.append(f"""CREATE TEMPORARY TABLE sink_dead_letter ({DEAD_LETTER_COLUMNS}) WITH (
  'connector' = 'kafka', 'topic' = {pipeline._q(contracts.DEAD_LETTER_TOPIC)},
  'properties.bootstrap.servers' = {pipeline._q(env['FLINK_JOB_KAFKA_BOOTSTRAP_SERVERS'])},
  'format' = 'json', 'json.timestamp-format.standard' = 'ISO-8601',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = {pipeline._q(contracts.FLINK_JOB_NAME + '-dead-letter')},
  'properties.transaction.timeout.ms' = '600000'
)""")
    return ddls


def build(t_env, env: dict[str, str]):
    configure(t_env)
    bootstrap = env["FLINK_JOB_KAFKA_BOOTSTRAP_SERVERS"]
    replay = pipeline.Replay.from_json(env["FLINK_JOB_REPLAY"]) if env.get("FLINK_JOB_REPLAY") else pipeline.Replay()
    t_env.execute_sql(pipeline.kafka_source_ddl("src_web_events", pipeline.TOPICS["web"], "event_time", bootstrap,
                                                f"flink-{pipeline.JOB_NAME}", replay))
    t_env.execute_sql(pipeline.kafka_source_ddl("src_purchase_events", pipeline.TOPICS["orders"], "order_time",
                                                bootstrap, f"flink-{pipeline.JOB_NAME}", replay))
    for ddl in sink_ddls(env):
        t_env.execute_sql(ddl)
    t_env.execute_sql(pipeline.clock_source_ddl("src_clock"))
    register_views(t_env, "src_web_events", "src_purchase_events", replay, clock="src_clock")
    statements = t_env.create_statement_set()
    for sink, query in queries(replay).items():
        statements.add_insert_sql(f"INSERT INTO {sink}\n{query}")
    return statements


def main() -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    statements = build(t_env, dict(os.environ))
    if "--explain" in sys.argv:
        print(statements.explain())
        return
    statements.execute()  # detached under `flink run -d`: returns once submitted


if __name__ == "__main__":
    main()

"""The CDC sink: Debezium topics (Kafka) -> ClickHouse ReplacingMergeTree mirror, at least once.

Loop: poll records, map each to a mirror row (mapping.py), buffer per table; when the buffer has
CDC_SINK_BATCH_ROWS rows or its oldest record is CDC_SINK_BATCH_MS old, insert every table's rows
into ClickHouse (HTTP interface, clickhouse-connect), flush the dead letters, and only then commit
the Kafka offsets (synchronously). A crash replays from the last commit; the replayed rows carry
the same _version, so under FINAL the mirror shows each source row once (exactly-once effect).
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from debezium.cdc_sink import mapping
from debezium.cdc_sink.mapping import BadRecord, IncompatibleSchema
from platform_common import contracts

log = logging.getLogger("cdc_sink")

DEAD_LETTER_TOPIC = contracts.DEAD_LETTER_TOPIC
GROUP_ID = contracts.CDC_SINK_CONSUMER_GROUP
INSERT_RETRY_SECONDS = 120


@dataclass
class Config:
    bootstrap: str
    topic_prefix: str
    clickhouse: dict[str, Any]           # clickhouse_connect.get_client kwargs
    health_port: int
    health_host: str = "127.0.0.1"
    batch_rows: int = 20000
    batch_ms: int = 500
    group_id: str = GROUP_ID

    @classmethod
    def from_settings(cls, settings) -> Config:
        return cls(
            bootstrap=settings.kafka_bootstrap_servers,
            topic_prefix=settings.cdc_topic_prefix,
            clickhouse=dict(host=settings.clickhouse_host, port=settings.clickhouse_port,
                            username=settings.clickhouse_user, password=settings.clickhouse_password),
            health_port=settings.cdc_sink_port,
            health_host=settings.cdc_sink_host,
            batch_rows=settings.cdc_sink_batch_rows,
            batch_ms=settings.cdc_sink_batch_ms,
        )


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    last_loop_at: float = field(default_factory=time.time)
    last_flush_at: float | None = None
    records: int = 0
    rows_written: int = 0
    batches: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    schema_changes: int = 0
    lag: int | None = None
    last_batch_ms: float | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, loop_age_s=round(time.time() - self.last_loop_at, 3))


class TableState:
    """What the sink knows about one mirror table: its columns (name -> type) and key."""

    def __init__(self, name: str, columns: list[tuple[str, str]], keys: tuple[str, ...]):
        self.name = name
        self.columns = columns                      # source columns in table order, meta excluded
        self.keys = keys
        self.schemas: dict[bytes, mapping.ValueSchema] = {}


class CdcSink:
    def __init__(self, config: Config):
        import clickhouse_connect
        self.config = config
        self.stats = Stats()
        self.stopping = threading.Event()
        self.ch = clickhouse_connect.get_client(**config.clickhouse, autogenerate_session_id=False)
        self.consumer = Consumer({
            "bootstrap.servers": config.bootstrap,
            "group.id": config.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "max.poll.interval.ms": 600000,
            "topic.metadata.refresh.interval.ms": 10000,
            "allow.auto.create.topics": False,
            "log_level": 3,
        })
        self.producer = Producer({"bootstrap.servers": config.bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 20})
        self.tables: dict[str, TableState] = {}
        self.buffers: dict[str, list] = {}
        self.buffered = 0
        self.oldest: float | None = None
        self.pending_offsets: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.dead_letter_errors: list[str] = []
        self._next_lag_at = 0.0

    # -- ClickHouse side ---------------------------------------------------------------------
    def _describe(self, table: str) -> tuple[list[tuple[str, str]], tuple[str, ...]] | None:
        rows = self.ch.query(
            "SELECT name, type, is_in_sorting_key FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} ORDER BY position",
            parameters={"db": mapping.MIRROR_DATABASE, "t": table}).result_rows
        if not rows:
            return None
        meta = set(mapping.META_COLUMNS) | {"_synced_at"}
        columns = [(name, ch_type) for name, ch_type, _ in rows if name not in meta]
        keys = tuple(name for name, _, in_key in rows if in_key)
        return columns, keys

    def table_state(self, table: str, schema_bytes: bytes, value_schema: mapping.ValueSchema,
                    key_schema: dict | None) -> TableState:
        state = self.tables.get(table)
        if state is None:
            described = self._describe(table)
            if described is None:
                ddl = mapping.create_table_sql(table, value_schema, mapping.key_fields(key_schema))
                log.info("creating mirror table %s.%s", mapping.MIRROR_DATABASE, table)
                self.ch.command(ddl)
                described = self._describe(table)
            state = self.tables[table] = TableState(table, *described)
        if schema_bytes not in state.schemas:
            existing = dict(state.columns)
            statements = mapping.schema_changes(table, existing, value_schema, state.keys)
            if statements:
                # rows buffered under the old schema go first, then the table changes
                self.flush()
                for statement in statements:
                    log.warning("schema change: %s", statement)
                    self.ch.command(statement)
                    self.stats.schema_changes += 1
                state.columns = self._describe(table)[0]
            state.schemas[schema_bytes] = value_schema
        return state

    def _insert(self, table: str, rows: list[list[Any]]) -> None:
        state = self.tables[table]
        names = [name for name, _ in state.columns] + list(mapping.META_COLUMNS)
        deadline = time.monotonic() + INSERT_RETRY_SECONDS
        delay = 0.5
        while True:
            try:
                self.ch.insert(f"{mapping.MIRROR_DATABASE}.{table}", rows, column_names=names)
                return
            except Exception as exc:  # noqa: BLE001 - any ClickHouse/HTTP failure: retry, then give up
                message = " ".join(str(exc).split())[:300]
                self.stats.last_error = f"insert into {table}: {message}"
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise
                log.warning("insert of %d rows into %s failed, retrying in %.1fs: %s", len(rows), table, delay,
                            message)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- Kafka side --------------------------------------------------------------------------
    def dead_letter(self, msg: Message, reason: str) -> None:
        value = msg.value()
        log.error("dead letter: %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        record = {
            "source": "cdc-sink",
            "source_topic": msg.topic(),
            "source_partition": msg.partition(),
            "source_offset": msg.offset(),
            "reason": reason,
            "key": msg.key().decode("utf-8", "replace") if msg.key() else None,
            "payload": value.decode("utf-8", "replace") if value is not None else None,
            "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

        def delivered(err, _msg):
            if err is not None:
                self.dead_letter_errors.append(str(err))

        self.producer.produce(DEAD_LETTER_TOPIC, key=msg.key(), value=orjson.dumps(record),
                              headers=[("reason", reason[:500].encode())], on_delivery=delivered)
        self.producer.poll(0)
        self.stats.dead_letters += 1

    def handle(self, msg: Message) -> None:
        """Map one record into the buffers (or the dead-letter topic); records its offset."""
        self.stats.records += 1
        self._map(msg)
        # after the record is buffered (or dead-lettered): a flush triggered while mapping it (a
        # schema change) must not commit the record itself
        self.pending_offsets[(msg.topic(), msg.partition())] = msg.offset() + 1

    def _map(self, msg: Message) -> None:
        value = msg.value()
        if value is None:
            # the tombstone after a delete (for log compaction): the delete event itself, which
            # carries the LSN, already wrote the _is_deleted row
            self.stats.tombstones += 1
            return
        try:
            table = mapping.mirror_table(msg.topic(), self.config.topic_prefix)
            schema_bytes, payload = mapping.split_message(value)
            state = self.tables.get(table)
            value_schema = state.schemas.get(schema_bytes) if state else None
            if value_schema is None:
                try:
                    schema = orjson.loads(schema_bytes)
                except orjson.JSONDecodeError as exc:
                    raise BadRecord(f"schema is not JSON: {exc}") from None
                value_schema = mapping.parse_value_schema(schema)
                key_schema = None
                if msg.key():
                    try:
                        key_schema = orjson.loads(msg.key()).get("schema")
                    except (orjson.JSONDecodeError, AttributeError):
                        raise BadRecord("key is not a JSON message with a schema") from None
                state = self.table_state(table, schema_bytes, value_schema, key_schema)
            key_payload = None
            if isinstance(payload, dict) and payload.get("op") == "d":
                try:
                    key_payload = orjson.loads(msg.key()).get("payload") if msg.key() else None
                except (orjson.JSONDecodeError, AttributeError):
                    raise BadRecord("key is not a JSON message") from None
            change = mapping.to_change(table, value_schema, payload, key_payload)
            row = mapping.row_values(change, state.columns)
        except BadRecord as exc:
            self.dead_letter(msg, str(exc))
            return
        self.buffers.setdefault(table, []).append(row)
        self.buffered += 1
        if self.oldest is None:
            self.oldest = time.monotonic()

    def flush(self) -> None:
        """Insert every buffered row, deliver the dead letters, then commit the offsets."""
        started = time.monotonic()
        rows = 0
        for table, buffered in list(self.buffers.items()):
            if buffered:
                self._insert(table, buffered)
                rows += len(buffered)
        self.buffers.clear()
        self.buffered = 0
        self.oldest = None
        if self.producer.flush(30) != 0 or self.dead_letter_errors:
            raise RuntimeError(f"dead-letter topic {DEAD_LETTER_TOPIC} did not take the bad records: "
                               f"{(self.dead_letter_errors or ['timeout'])[0]}")
        if self.pending_offsets:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.pending_offsets.items()]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                self.committed.update(self.pending_offsets)
            except KafkaException as exc:
                # e.g. a topic deleted meanwhile, or a rebalance: the rows are in ClickHouse, and
                # what is not committed is replayed later with the same _version (no duplicate)
                log.warning("offset commit failed (records will be replayed): %s", exc)
            self.pending_offsets.clear()
        if rows:
            self.stats.rows_written += rows
            self.stats.batches += 1
            self.stats.last_batch_ms = round((time.monotonic() - started) * 1000, 1)
            log.debug("batch: %d rows in %.0f ms", rows, self.stats.last_batch_ms)
        self.stats.last_flush_at = time.time()

    def _on_revoke(self, consumer, partitions) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - uncommitted rows are replayed by the next owner
            log.warning("flush on partition revoke failed (records will be replayed): %s", exc)
        for tp in partitions:
            self.committed.pop((tp.topic, tp.partition), None)
            self.pending_offsets.pop((tp.topic, tp.partition), None)

    def update_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_at:
            return
        self._next_lag_at = now + 2.0
        try:
            total = 0
            assignment = self.consumer.assignment()
            committed = {(tp.topic, tp.partition): tp.offset
                         for tp in self.consumer.committed(assignment, timeout=5)} if assignment else {}
            for tp in assignment:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=5)
                done = committed.get((tp.topic, tp.partition), -1)
                total += max(0, high - (done if done >= 0 else low))
            self.stats.lag = total
        except KafkaException as exc:
            log.debug("lag unavailable: %s", exc)

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> None:
        pattern = f"^{self.config.topic_prefix}\\.[A-Za-z0-9_]+\\.[A-Za-z0-9_]+$"
        self.consumer.subscribe([pattern], on_revoke=self._on_revoke)
        log.info("consuming %s into ClickHouse database %s (batch %d rows / %d ms)", pattern,
                 mapping.MIRROR_DATABASE, self.config.batch_rows, self.config.batch_ms)
        max_age = self.config.batch_ms / 1000
        try:
            while not self.stopping.is_set():
                self.stats.last_loop_at = time.time()
                room = max(1, min(5000, self.config.batch_rows - self.buffered))
                timeout = 0.1 if self.oldest is None else max(0.0, min(0.1, self.oldest + max_age - time.monotonic()))
                for msg in self.consumer.consume(num_messages=room, timeout=timeout):
                    error = msg.error()
                    if error is not None:
                        if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                            continue
                        if error.fatal():
                            raise KafkaException(error)
                        log.warning("kafka: %s", error)
                        continue
                    self.handle(msg)
                if self.buffered >= self.config.batch_rows or (
                        self.oldest is not None and time.monotonic() - self.oldest >= max_age) or (
                        not self.buffered and self.pending_offsets and self.oldest is None):
                    self.flush()
                self.update_lag()
            self.flush()
        finally:
            self.consumer.close()

    def stop(self, *_args) -> None:
        self.stopping.set()


def serve_health(sink: CdcSink) -> ThreadingHTTPServer:
    """GET /health: 200 while the loop is alive (polled within 30 s), else 503; JSON stats."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.split("?")[0] not in ("/health", "/"):
                self.send_error(404)
                return
            stats = sink.stats.as_dict()
            ok = stats["loop_age_s"] < 30
            body = json.dumps({"status": "ok" if ok else "stalled", **stats}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((sink.config.health_host, sink.config.health_port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from platform_common import config as stack_config
    from platform_common.errors import StackError
    try:
        cfg = Config.from_settings(stack_config.load())
    except StackError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    sink = CdcSink(cfg)
    signal.signal(signal.SIGTERM, sink.stop)
    signal.signal(signal.SIGINT, sink.stop)
    try:
        server = serve_health(sink)
    except OSError as exc:
        print(f"error: cannot listen on {cfg.health_host}:{cfg.health_port} for /health ({exc.strerror}); "
              f"change CDC_SINK_PORT in .env", flush=True)
        return 2
    try:
        sink.run()
    except IncompatibleSchema as exc:
        print(f"error: {exc}", flush=True)
        return 3
    finally:
        server.shutdown()
    log.info("stopped: %s", json.dumps(sink.stats.as_dict()))
    return 0

"""Debezium envelope -> ClickHouse mirror row: type mapping, value conversion, version, schema changes.

Pure functions and small classes, no I/O: the unit tests drive them with hand-made Debezium JSON.

Connector settings this relies on (debezium/connectors/*.json): JSON converter with schemas,
`decimal.handling.mode=precise` (numeric -> Connect Decimal: base64 two's complement + scale, so the
exact value and its precision/scale reach ClickHouse), `time.precision.mode=adaptive_time_microseconds`
(date -> days, timestamp -> microseconds, timestamptz -> ISO-8601 string with microseconds).

Mirror table `cdc.<schema>_<table>`: the source columns, then
  _version      UInt64   source LSN * 2^16 + sub (sub 0 for snapshot rows, 1 for streamed changes)
  _is_deleted   UInt8    1 for a delete (the row carries the key; other columns get defaults)
  _op           String   r (snapshot), c, u, d
  _source_ts_ms Int64    commit time in the source (Debezium source.ts_ms)
  _synced_at    DateTime64(6, 'UTC') DEFAULT now64(6): when ClickHouse received the row
ENGINE = ReplacingMergeTree(_version, _is_deleted) ORDER BY the source primary key.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

MIRROR_DATABASE = "cdc"
META_COLUMNS = ("_version", "_is_deleted", "_op", "_source_ts_ms")
META_DDL = ("`_version` UInt64", "`_is_deleted` UInt8", "`_op` LowCardinality(String)", "`_source_ts_ms` Int64",
            "`_synced_at` DateTime64(6, 'UTC') DEFAULT now64(6)")
VERSION_SHIFT = 16
MAX_LSN = 2 ** (64 - VERSION_SHIFT) - 1
EPOCH_DATE = dt.date(1970, 1, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
PAYLOAD_MARK = b',"payload":'


class BadRecord(Exception):
    """A record that cannot be mapped: it goes to the dead-letter topic with this reason."""


class IncompatibleSchema(Exception):
    """A source schema change the mirror cannot follow by itself; the sink stops on it."""

    def __init__(self, table: str, column: str, reason: str):
        super().__init__(f"incompatible schema change in {MIRROR_DATABASE}.{table} column {column}: {reason}")
        self.table, self.column, self.reason = table, column, reason


# -- topics and tables -------------------------------------------------------------------------
def mirror_table(topic: str, prefix: str) -> str:
    """`cdc.crm.customers` -> `crm_customers` (in database cdc)."""
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] != prefix or not all(re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts[1:]):
        raise BadRecord(f"topic {topic!r} is not {prefix}.<schema>.<table>")
    return f"{parts[1]}_{parts[2]}"


# -- versions ----------------------------------------------------------------------------------
def version(source: dict, op: str) -> int:
    """Strictly increasing per key: the change's LSN, shifted, plus 1 for streamed changes.

    Changes to one row are serialised by PostgreSQL's row locks, so a later change of a key always
    has a higher LSN. Snapshot rows (op=r) carry the snapshot's LSN with sub-position 0, so every
    change streamed after the snapshot (LSN >= snapshot LSN, sub 1) outranks them, and a later
    re-snapshot outranks older changes.
    """
    lsn = source.get("lsn")
    if not isinstance(lsn, int) or lsn < 0:
        raise BadRecord(f"source.lsn missing or not a non-negative integer: {lsn!r}")
    if lsn > MAX_LSN:
        raise BadRecord(f"source.lsn {lsn} does not fit the version (max {MAX_LSN})")
    return (lsn << VERSION_SHIFT) | (0 if op == "r" else 1)


# -- types -------------------------------------------------------------------------------------
def strip_type(ch_type: str) -> str:
    """Compare types without Nullable/LowCardinality wrappers and spaces."""
    t = ch_type.replace(" ", "")
    changed = True
    while changed:
        changed = False
        for wrapper in ("Nullable(", "LowCardinality("):
            if t.startswith(wrapper) and t.endswith(")"):
                t, changed = t[len(wrapper):-1], True
    return t


def is_nullable(ch_type: str) -> bool:
    t = ch_type.replace(" ", "")
    return t.startswith(("Nullable(", "LowCardinality(Nullable("))


def base_type(f: dict) -> str:
    """The ClickHouse type (without Nullable) for a Kafka Connect schema field, or BadRecord."""
    kind, name = f.get("type"), f.get("name")
    params = f.get("parameters") or {}
    if name == "io.debezium.time.Date":
        return "Date32"
    if name in ("io.debezium.time.ZonedTimestamp", "io.debezium.time.MicroTimestamp"):
        return "DateTime64(6, 'UTC')"
    if name == "io.debezium.time.Timestamp":
        return "DateTime64(3, 'UTC')"
    if name == "io.debezium.time.NanoTimestamp":
        return "DateTime64(9, 'UTC')"
    if name == "io.debezium.data.Uuid":
        return "UUID"
    if name == "org.apache.kafka.connect.data.Decimal":
        scale = int(params.get("scale", 0))
        precision = int(params.get("connect.decimal.precision", 38))
        if not 1 <= precision <= 76 or not 0 <= scale <= precision:
            raise BadRecord(f"decimal field {f.get('field')!r} has precision {precision}, scale {scale}")
        return f"Decimal({precision}, {scale})"
    if name == "io.debezium.data.VariableScaleDecimal":
        return "String"  # numeric without precision: exact text
    simple = {"int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64", "float32": "Float32",
              "float64": "Float64", "boolean": "Bool", "string": "String", "bytes": "String"}
    if kind in simple:
        # MicroTime/ZonedTime/Json/Enum/Xml/... keep their Connect representation (Int64 or String)
        return simple[kind]
    if kind in ("array", "map", "struct"):
        return "String"  # JSON text
    raise BadRecord(f"field {f.get('field')!r} has unsupported type {kind!r}")


def column_type(f: dict) -> str:
    t = base_type(f)
    return f"Nullable({t})" if f.get("optional") else t


def default_value(ch_type: str) -> Any:
    """What a non-key column holds in a delete row (ClickHouse's own default for the type)."""
    if is_nullable(ch_type):
        return None
    t = strip_type(ch_type)
    if t.startswith(("DateTime64", "DateTime")):
        return EPOCH
    if t in ("Date", "Date32"):
        return EPOCH_DATE
    if t.startswith("Decimal"):
        return decimal.Decimal(0)
    if t == "UUID":
        return ZERO_UUID
    if t == "Bool":
        return False
    if t.startswith(("Int", "UInt")):
        return 0
    if t.startswith("Float"):
        return 0.0
    return ""


# -- values ------------------------------------------------------------------------------------
def _decimal(scale: int) -> Callable[[Any], Any]:
    quantum = decimal.Decimal(1).scaleb(-scale)

    def convert(v: Any) -> Any:
        if v is None:
            return None
        unscaled = int.from_bytes(base64.b64decode(v, validate=True), "big", signed=True)
        return decimal.Decimal(unscaled).scaleb(-scale).quantize(quantum)
    return convert


def _zoned(v: Any) -> Any:
    if v is None:
        return None
    return dt.datetime.fromisoformat(v).astimezone(dt.UTC)


def _micros(v: Any) -> Any:
    return None if v is None else EPOCH + dt.timedelta(microseconds=v)


def _millis(v: Any) -> Any:
    return None if v is None else EPOCH + dt.timedelta(milliseconds=v)


def _nanos(v: Any) -> Any:
    return None if v is None else EPOCH + dt.timedelta(microseconds=v // 1000)


def _date(v: Any) -> Any:
    return None if v is None else EPOCH_DATE + dt.timedelta(days=v)


def _variable_decimal(v: Any) -> Any:
    if v is None:
        return None
    unscaled = int.from_bytes(base64.b64decode(v["value"]), "big", signed=True)
    return str(decimal.Decimal(unscaled).scaleb(-int(v["scale"])))


def _bytes(v: Any) -> Any:
    return None if v is None else base64.b64decode(v)


def _json_text(v: Any) -> Any:
    return None if v is None else orjson.dumps(v).decode()


def _uuid(v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) != 36:
        raise ValueError(f"not a UUID: {v!r}")
    return v


def _typed(kind: type | tuple[type, ...], label: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, kind) and isinstance(v, bool) == (label == "bool"):
            return v
        raise ValueError(f"expected {label}, got {type(v).__name__} {v!r}"[:200])
    return check


def converter(f: dict) -> Callable[[Any], Any]:
    """JSON payload value -> the Python value clickhouse-connect inserts for column_type(f)."""
    kind, name = f.get("type"), f.get("name")
    params = f.get("parameters") or {}
    if name == "io.debezium.time.Date":
        return _date
    if name == "io.debezium.time.ZonedTimestamp":
        return _zoned
    if name == "io.debezium.time.MicroTimestamp":
        return _micros
    if name == "io.debezium.time.Timestamp":
        return _millis
    if name == "io.debezium.time.NanoTimestamp":
        return _nanos
    if name == "io.debezium.data.Uuid":
        return _uuid
    if name == "org.apache.kafka.connect.data.Decimal":
        return _decimal(int(params.get("scale", 0)))
    if name == "io.debezium.data.VariableScaleDecimal":
        return _variable_decimal
    if kind == "bytes":
        return _bytes
    if kind in ("array", "map", "struct"):
        return _json_text
    if kind in ("int8", "int16", "int32", "int64"):
        return _typed(int, "integer")
    if kind in ("float32", "float64"):
        return _typed((int, float), "number")
    if kind == "boolean":
        return _typed(bool, "bool")
    return _typed(str, "string")


# -- schemas -----------------------------------------------------------------------------------
@dataclass
class Column:
    name: str
    ch_type: str
    convert: Callable[[Any], Any]
    required: bool


@dataclass
class ValueSchema:
    """The `after` struct of an envelope schema: the source table's columns in order."""
    columns: list[Column]
    by_name: dict[str, Column] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {c.name: c for c in self.columns}


def parse_value_schema(schema: dict) -> ValueSchema:
    """Envelope schema -> its `after` (row) schema; BadRecord if it is not a Debezium envelope."""
    if schema.get("type") != "struct" or not str(schema.get("name", "")).endswith(".Envelope"):
        raise BadRecord("value schema is not a Debezium envelope (expected a struct named *.Envelope)")
    after = next((f for f in schema.get("fields", []) if f.get("field") == "after"), None)
    if after is None or after.get("type") != "struct":
        raise BadRecord("envelope schema has no 'after' struct")
    columns = []
    for f in after.get("fields", []):
        columns.append(Column(f["field"], column_type(f), converter(f), not f.get("optional", False)))
    return ValueSchema(columns)


def key_fields(key_schema: dict | None) -> list[str]:
    if not key_schema or key_schema.get("type") != "struct":
        return []
    return [f["field"] for f in key_schema.get("fields", [])]


def create_table_sql(table: str, value_schema: ValueSchema, keys: list[str]) -> str:
    if not keys:
        raise BadRecord(f"no primary key for {MIRROR_DATABASE}.{table}: a mirror needs the source primary key")
    cols = [f"`{c.name}` {c.ch_type}" for c in value_schema.columns] + list(META_DDL)
    order = ", ".join(f"`{k}`" for k in keys)
    return (f"CREATE TABLE IF NOT EXISTS {MIRROR_DATABASE}.`{table}` (\n    " + ",\n    ".join(cols) +
            f"\n) ENGINE = ReplacingMergeTree(_version, _is_deleted)\nORDER BY ({order})")


def schema_changes(table: str, existing: dict[str, str], value_schema: ValueSchema,
                   keys: tuple[str, ...] = ()) -> list[str]:
    """ALTER statements that let `existing` (column -> ClickHouse type) take rows of value_schema.

    A new optional source column becomes a Nullable column; a column that became optional becomes
    Nullable. Anything else (a new NOT NULL column, a changed type) raises IncompatibleSchema.
    Columns the source no longer has stay (new rows hold their default).
    """
    statements = []
    for col in value_schema.columns:
        if col.name.startswith("_") and col.name in (*META_COLUMNS, "_synced_at"):
            raise IncompatibleSchema(table, col.name, "the source column name clashes with a mirror column")
        current = existing.get(col.name)
        if current is None:
            if col.required:
                raise IncompatibleSchema(table, col.name, f"new NOT NULL column ({col.ch_type}); only nullable "
                                         f"columns are added automatically: add it to the mirror by a migration")
            statements.append(f"ALTER TABLE {MIRROR_DATABASE}.`{table}` ADD COLUMN IF NOT EXISTS "
                              f"`{col.name}` {col.ch_type}")
            continue
        if strip_type(current) != strip_type(col.ch_type):
            raise IncompatibleSchema(table, col.name, f"type changed: mirror has {current}, source now maps to "
                                     f"{col.ch_type}; migrate the mirror table (or rebuild it from a snapshot)")
        if not col.required and not is_nullable(current):
            if col.name in keys:
                raise IncompatibleSchema(table, col.name, "a primary key column became nullable")
            statements.append(f"ALTER TABLE {MIRROR_DATABASE}.`{table}` MODIFY COLUMN `{col.name}` "
                              f"{col.ch_type}")
    return statements


# -- messages ----------------------------------------------------------------------------------
def split_message(raw: bytes) -> tuple[bytes, dict]:
    """(schema bytes, payload) of a JsonConverter message `{"schema":...,"payload":...}`.

    The schema part is returned as bytes so callers can cache its parse: it only changes when the
    source table does. `,"payload":` cannot occur unescaped inside the schema (names are values).
    """
    at = raw.find(PAYLOAD_MARK)
    try:
        if raw.startswith(b'{"schema":') and at > 0 and raw.endswith(b"}"):
            return raw[10:at], orjson.loads(raw[at + len(PAYLOAD_MARK):-1])
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or "payload" not in doc or "schema" not in doc:
        raise BadRecord("not a JSON message with 'schema' and 'payload' (JsonConverter with schemas.enable=true)")
    return orjson.dumps(doc["schema"]), doc["payload"]


@dataclass
class Change:
    table: str
    row: dict[str, Any]          # source columns that the message carries, converted
    version: int
    deleted: bool
    op: str
    source_ts_ms: int


def to_change(table: str, value_schema: ValueSchema, payload: dict, key_payload: dict | None) -> Change:
    """One envelope payload -> the mirror row it writes. BadRecord when it cannot be mapped."""
    if not isinstance(payload, dict):
        raise BadRecord("payload is not an object")
    op = payload.get("op")
    source = payload.get("source")
    if not isinstance(source, dict):
        raise BadRecord("envelope has no source block")
    if op in ("c", "u", "r"):
        image = payload.get("after")
        deleted = False
    elif op == "d":
        image = key_payload if isinstance(key_payload, dict) else payload.get("before")
        deleted = True
    elif op == "t":
        raise BadRecord("TRUNCATE is not mirrored (rows would be left in the mirror); re-snapshot the table")
    else:
        raise BadRecord(f"unknown op {op!r}")
    if not isinstance(image, dict):
        raise BadRecord(f"op {op!r} without its row image ({'key/before' if deleted else 'after'})")
    row = {}
    for name, value in image.items():
        col = value_schema.by_name.get(name)
        if col is None:
            raise BadRecord(f"field {name!r} is not in the message's schema")
        try:
            converted = col.convert(value)
        except (ValueError, TypeError, KeyError, decimal.InvalidOperation, base64.binascii.Error) as exc:
            raise BadRecord(f"column {name}: cannot convert {str(value)[:80]!r} to {col.ch_type}: {exc}") from None
        if converted is None and col.required and not deleted:
            raise BadRecord(f"column {name}: null in a NOT NULL column")
        row[name] = converted
    ts = source.get("ts_ms")
    return Change(table, row, version(source, op), deleted, op, ts if isinstance(ts, int) else 0)


def row_values(change: Change, columns: list[tuple[str, str]]) -> list[Any]:
    """The insert tuple for the mirror's (name, type) columns, then the meta columns."""
    row = change.row
    values = [row[name] if name in row else default_value(ch_type) for name, ch_type in columns]
    values += [change.version, 1 if change.deleted else 0, change.op, change.source_ts_ms]
    return values

"""The CDC sink's mapping on hand-made Debezium JSON: envelope -> row, versions, types, schema changes."""
from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal

import pytest

from debezium import connectors
from debezium.cdc_sink import mapping
from debezium.cdc_sink.mapping import BadRecord, IncompatibleSchema

pytestmark = pytest.mark.unit

UTC = dt.UTC


def field(name, kind, optional=False, semantic=None, **params):
    f = {"type": kind, "optional": optional, "field": name}
    if semantic:
        f["name"] = semantic
    if params:
        f["parameters"] = {k.replace("_", "."): str(v) for k, v in params.items()}
    return f


ORDER_FIELDS = [
    field("order_id", "string", semantic="io.debezium.data.Uuid"),
    field("customer_id", "string"),
    field("session_id", "string", optional=True),
    field("order_time", "string", semantic="io.debezium.time.ZonedTimestamp"),
    field("items", "string", semantic="io.debezium.data.Json"),
    field("item_count", "int32"),
    {"type": "bytes", "optional": False, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
     "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "field": "total_amount"},
    field("signup", "int32", optional=True, semantic="io.debezium.time.Date"),
    field("seen_at", "int64", optional=True, semantic="io.debezium.time.MicroTimestamp"),
    field("flag", "boolean", optional=True),
]


def envelope_schema(fields):
    row = {"type": "struct", "fields": fields, "optional": True, "name": "cdc-raw.raw.purchase_events.Value"}
    return {"type": "struct", "name": "cdc-raw.raw.purchase_events.Envelope", "version": 2, "optional": False,
            "fields": [dict(row, field="before"), dict(row, field="after"),
                       {"type": "struct", "fields": [], "optional": False, "field": "source",
                        "name": "io.debezium.connector.postgresql.Source"},
                       {"type": "string", "optional": False, "field": "op"}]}


def dec(text: str, scale: int) -> str:
    unscaled = int(Decimal(text).scaleb(scale))
    return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8 or 1, "big", signed=True)).decode()


def after(**overrides):
    row = {"order_id": "6f1c2d0e-1111-4222-8333-444455556666", "customer_id": "c-1", "session_id": None,
           "order_time": "2026-03-04T05:06:07.654321Z", "items": '[{"product_id":"p","quantity":2}]',
           "item_count": 2, "total_amount": dec("1234.50", 2), "signup": 19724, "seen_at": 1_700_000_000_123_456,
           "flag": True}
    row.update(overrides)
    return row


def payload(op="c", lsn=27984712, before=None, aft=None, snapshot="false"):
    return {"before": before, "after": after() if aft is None and op in "cur" else aft, "op": op,
            "source": {"lsn": lsn, "ts_ms": 1795344098916, "snapshot": snapshot, "schema": "raw",
                       "table": "purchase_events", "sequence": f'["{lsn}","{lsn}"]'}}


SCHEMA = mapping.parse_value_schema(envelope_schema(ORDER_FIELDS))


def test_types_are_mapped_deliberately():
    types = {c.name: c.ch_type for c in SCHEMA.columns}
    assert types == {
        "order_id": "UUID", "customer_id": "String", "session_id": "Nullable(String)",
        "order_time": "DateTime64(6, 'UTC')", "items": "String", "item_count": "Int32",
        "total_amount": "Decimal(12, 2)", "signup": "Nullable(Date32)", "seen_at": "Nullable(DateTime64(6, 'UTC'))",
        "flag": "Nullable(Bool)"}


def test_an_insert_maps_to_a_row_with_converted_values():
    change = mapping.to_change("raw_purchase_events", SCHEMA, payload("c"), None)
    assert change.row == {
        "order_id": "6f1c2d0e-1111-4222-8333-444455556666", "customer_id": "c-1", "session_id": None,
        "order_time": dt.datetime(2026, 3, 4, 5, 6, 7, 654321, tzinfo=UTC),
        "items": '[{"product_id":"p","quantity":2}]', "item_count": 2, "total_amount": Decimal("1234.50"),
        "signup": dt.date(2024, 1, 2), "seen_at": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
        "flag": True}
    assert (change.op, change.deleted, change.source_ts_ms) == ("c", False, 1795344098916)
    columns = [(c.name, c.ch_type) for c in SCHEMA.columns]
    assert mapping.row_values(change, columns)[-4:] == [27984712 * 2**16 + 1, 0, "c", 1795344098916]


@pytest.mark.parametrize("text", ["0.00", "-0.01", "-1234567890.99", "9999999999.99", "127.00", "-128.00"])
def test_precise_decimals_round_trip(text):
    assert mapping.converter(ORDER_FIELDS[6])(dec(text, 2)) == Decimal(text)


def test_zoned_timestamps_with_offsets_and_without_fraction():
    convert = mapping.converter(ORDER_FIELDS[3])
    assert convert("2026-03-04T07:06:07+02:00") == dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert convert(None) is None


def test_a_delete_carries_the_key_and_defaults():
    key = {"order_id": "6f1c2d0e-1111-4222-8333-444455556666"}
    before = {**dict.fromkeys(after()), **key}
    change = mapping.to_change("raw_purchase_events", SCHEMA, payload("d", lsn=500, before=before), key)
    assert change.deleted and change.row == key
    columns = [(c.name, c.ch_type) for c in SCHEMA.columns]
    values = mapping.row_values(change, columns)
    assert values[:2] == ["6f1c2d0e-1111-4222-8333-444455556666", ""]
    assert values[3] == mapping.EPOCH and values[6] == Decimal(0) and values[2] is None
    assert values[-4:-2] == [500 * 2**16 + 1, 1]


def test_versions_increase_per_key_from_snapshot_through_changes():
    snapshot = mapping.version({"lsn": 1000}, "r")
    insert_same_lsn = mapping.version({"lsn": 1000}, "u")
    later = mapping.version({"lsn": 1001}, "u")
    assert snapshot < insert_same_lsn < later
    assert mapping.version({"lsn": 2000}, "r") > later  # a re-snapshot outranks older changes
    with pytest.raises(BadRecord, match="lsn"):
        mapping.version({"lsn": None}, "c")
    with pytest.raises(BadRecord, match="does not fit"):
        mapping.version({"lsn": 2**48}, "c")


def test_a_snapshot_row_is_an_ordinary_row_with_op_r():
    change = mapping.to_change("raw_purchase_events", SCHEMA, payload("r", lsn=77, snapshot="true"), None)
    assert change.op == "r" and not change.deleted and change.version == 77 << 16


@pytest.mark.parametrize("bad, reason", [
    (payload("x"), "unknown op"),
    (payload("t"), "TRUNCATE"),
    ({"op": "c", "after": after()}, "no source"),
    (payload("c", aft=after(item_count="two")), "column item_count"),
    (payload("c", aft=after(total_amount="%%%")), "column total_amount"),
    (payload("c", aft=after(customer_id=None)), "null in a NOT NULL"),
    (payload("c", aft=after(order_id="nope")), "column order_id"),
    (payload("c", aft={**after(), "surprise": 1}), "not in the message's schema"),
    (payload("c", lsn="0/1A"), "lsn"),
])
def test_records_that_cannot_be_mapped_say_why(bad, reason):
    with pytest.raises(BadRecord, match=reason):
        mapping.to_change("raw_purchase_events", SCHEMA, bad, None)


def test_messages_are_split_into_schema_bytes_and_payload():
    msg = json.dumps({"schema": envelope_schema(ORDER_FIELDS), "payload": payload("c")},
                     separators=(",", ":")).encode()
    schema_bytes, body = mapping.split_message(msg)
    assert json.loads(schema_bytes) == envelope_schema(ORDER_FIELDS) and body == payload("c")
    with pytest.raises(BadRecord, match="not JSON"):
        mapping.split_message(b"{oops")
    with pytest.raises(BadRecord, match="schema"):
        mapping.split_message(b'{"payload": 1}')
    with pytest.raises(BadRecord, match="envelope"):
        mapping.parse_value_schema({"type": "string"})


def test_topics_map_to_mirror_tables():
    assert mapping.mirror_table("cdc.crm.customers", "cdc") == "crm_customers"
    assert mapping.mirror_table("cdc.raw.web_events", "cdc") == "raw_web_events"
    with pytest.raises(BadRecord):
        mapping.mirror_table("other.crm.customers", "cdc")


EXISTING = {c.name: c.ch_type for c in SCHEMA.columns}


def test_a_new_nullable_column_is_added():
    evolved = mapping.parse_value_schema(envelope_schema(ORDER_FIELDS + [field("coupon", "string", optional=True)]))
    assert mapping.schema_changes("raw_purchase_events", EXISTING, evolved) == [
        "ALTER TABLE cdc.`raw_purchase_events` ADD COLUMN IF NOT EXISTS `coupon` Nullable(String)"]
    assert mapping.schema_changes("raw_purchase_events", EXISTING, SCHEMA) == []


def test_a_dropped_source_column_and_lowcardinality_are_compatible():
    fewer = mapping.parse_value_schema(envelope_schema(ORDER_FIELDS[:-1]))
    existing = dict(EXISTING, customer_id="LowCardinality(String)")
    assert mapping.schema_changes("raw_purchase_events", existing, fewer) == []


def test_a_column_that_becomes_nullable_is_modified():
    relaxed = [dict(f, optional=True) if f["field"] == "item_count" else f for f in ORDER_FIELDS]
    assert mapping.schema_changes("t", EXISTING, mapping.parse_value_schema(envelope_schema(relaxed))) == [
        "ALTER TABLE cdc.`t` MODIFY COLUMN `item_count` Nullable(Int32)"]


@pytest.mark.parametrize("fields, column, why", [
    (ORDER_FIELDS + [field("tier", "string")], "tier", "new NOT NULL column"),
    ([field("item_count", "int64") if f["field"] == "item_count" else f for f in ORDER_FIELDS], "item_count",
     "type changed: mirror has Int32"),
    ([dict(f, parameters={"scale": "3", "connect.decimal.precision": "14"}) if f["field"] == "total_amount" else f
      for f in ORDER_FIELDS], "total_amount", "Decimal(14, 3)"),
])
def test_incompatible_changes_stop_with_one_line_naming_table_and_column(fields, column, why):
    with pytest.raises(IncompatibleSchema) as info:
        mapping.schema_changes("raw_purchase_events", EXISTING, mapping.parse_value_schema(envelope_schema(fields)))
    message = str(info.value)
    assert "\n" not in message and f"cdc.raw_purchase_events column {column}" in message and why in message


def test_create_table_matches_the_migration_style():
    ddl = mapping.create_table_sql("raw_purchase_events", SCHEMA, ["order_id"])
    assert "ENGINE = ReplacingMergeTree(_version, _is_deleted)" in ddl and "ORDER BY (`order_id`)" in ddl
    assert "`total_amount` Decimal(12, 2)" in ddl and "`_synced_at` DateTime64(6, 'UTC') DEFAULT now64(6)" in ddl
    with pytest.raises(BadRecord, match="primary key"):
        mapping.create_table_sql("t", SCHEMA, [])


def test_connector_configs_render_placeholders_from_settings():
    settings = {"POSTGRES_HOST": "db", "POSTGRES_PORT": "5432", "POSTGRES_CDC_USER": "cdc", "POSTGRES_DB": "a",
                "POSTGRES_CDC_PASSWORD": "pw", "CDC_TOPIC_PREFIX": "cdc"}
    configs = connectors.load(settings)
    assert set(configs) == {"cdc-crm", "cdc-raw"}
    for name, config in configs.items():
        # the password stays a placeholder that Connect resolves from its own environment
        assert config["database.password"] == "${env:POSTGRES_CDC_PASSWORD}" and "pw" not in config.values()
        assert "${" not in json.dumps({k: v for k, v in config.items() if k != "database.password"})
        assert config["plugin.name"] == "pgoutput" and config["publication.autocreate.mode"] == "disabled"
        assert config["slot.name"] == config["publication.name"] == name.replace("-", "_")
        assert config["topic.creation.default.replication.factor"] == "1"
        assert "cdc.heartbeat" in config["heartbeat.action.query"]
    assert configs["cdc-crm"]["transforms.topics.replacement"] == "cdc.$1"
    with pytest.raises(Exception, match="POSTGRES_HOST"):
        connectors.load({})

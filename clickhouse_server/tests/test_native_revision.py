"""Native output for `client_protocol_version` (clickhouse_server/native.py).

The expected bytes are built from chDB's own revision-0 output of the same query: BlockInfo,
then per column the name, the exact type name (chDB's text name; for a top-level DateTime with a
time zone, which revision 0 drops, toTypeName()), has_custom_serialization = 0, and the column
data unchanged. That checks the type-name rendering and the data walk byte for byte.
"""
from __future__ import annotations

import struct

import pytest
import requests

from clickhouse_server import native
from clickhouse_server.errors import ClickHouseError

INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"  # is_overflows = 0, bucket_num = -1, end
INFO_54480 = b"\x01\x00\x02\xff\xff\xff\xff\x03\x00\x00"  # + out_of_order_buckets = []
BINARY = {"output_format_native_encode_types_in_binary_format": "1"}

EXPRS = {
    "u8": "toUInt8(number)", "i16": "toInt16(number) - 3", "u64": "number * 1000000007", "i256": "toInt256(number) - 5",
    "u128": "toUInt128(number)", "f32": "toFloat32(number) / 3", "f64": "number / 7", "bf16": "toBFloat16(number)",
    "s": "repeat('x', number * 40)", "s_utf8": "concat('ü', toString(number))", "fs": "toFixedString(toString(number), 3)",
    "date": "toDate(number)", "d32": "toDate32(number)", "dt_tz": "toDateTime(number, 'Asia/Tokyo')",
    "dt": "toDateTime(number)", "dt64_tz": "toDateTime64(number, 3, 'UTC')", "dt64": "toDateTime64(number, 6)",
    "uuid": "toUUID('123e4567-e89b-12d3-a456-426614174000')", "bool": "CAST(number % 2 AS Bool)", "u8cmp": "number % 2 = 0",
    "null_num": "if(number % 2, NULL, number)", "null_str": "if(number % 2, NULL, toString(number))", "nothing": "NULL",
    "arr": "range(number)", "arr2": "[range(number), [number]]", "arr_str": "arrayMap(x -> toString(x), range(number))",
    "arr_nothing": "[]", "lc": "toLowCardinality(toString(number % 3))",
    "lc_null": "toLowCardinality(if(number % 2, NULL, toString(number)))", "lc_num": "toLowCardinality(number)",
    "lc_fs": "toLowCardinality(toFixedString('ab', 2))", "arr_lc": "arrayMap(x -> toLowCardinality(toString(x)), range(number))",
    "arr_lc_empty": "CAST([] AS Array(LowCardinality(String)))", "map": "map(toString(number), number, 'k', 1)",
    "map_lc": "CAST(map(toString(number), [number]) AS Map(LowCardinality(String), Array(UInt64)))",
    "map_null": "CAST(map('a', if(number % 2, NULL, number)) AS Map(String, Nullable(UInt64)))",
    "dec32": "toDecimal32(number, 2)", "dec64": "toDecimal64(number, 4)", "dec128": "toDecimal128(number, 10)",
    "dec256": "toDecimal256(number, 30)", "dec": "CAST(number AS Decimal(10, 3))",
    "enum8": r"CAST(number % 2 + 1 AS Enum8('a' = 1, 'b\'c' = 2))",
    "enum16": r"CAST(number % 3 AS Enum16('x\\y' = 0, 'z\n\t' = 1, 'ü' = 2))",
    "tuple": "(number, toString(number))", "named": "CAST((number, 'x') AS Tuple(a UInt64, `b c` String))",
    "named_odd": "CAST((number, [toLowCardinality('q')]) AS Tuple(`x.y` UInt64, `NULL` Array(LowCardinality(String))))",
    "ipv4": "toIPv4('1.2.3.4')", "ipv6": "toIPv6('::1')", "time": "toTime(number)", "time64": "toTime64(number, 3)",
    "interval": "toIntervalSecond(number)", "interval_y": "toIntervalYear(number)", "point": "(number * 1.0, 2.0)::Point",
    "ring": "[(number * 1.0, 2.0)]::Ring", "multipolygon": "[[[(number * 1.0, 2.0)]]]::MultiPolygon",
    "simple_agg": "CAST(number AS SimpleAggregateFunction(sum, UInt64))",
    "null_dt": "CAST(toDateTime(number, 'UTC') AS Nullable(DateTime('UTC')))",
    "arr_dt": "[toDateTime(number, 'Europe/Berlin')]", "tuple_dt": "(toDateTime(number, 'UTC'), 1)",
    "nested_all": "CAST(([map('k', [toLowCardinality(toString(number))])], if(number % 2, NULL, 'v')) "
                  "AS Tuple(Array(Map(String, Array(LowCardinality(String)))), Nullable(String)))",
    "qbit": "CAST([toFloat32(number), 1, -2.5] AS QBit(Float32, 3))",
    "qbit_stride": "CAST(arrayMap(x -> toFloat32(x + number), range(16)) AS QBit(BFloat16, 16, 8))",
    "qbit_null": "CAST(if(number % 2, NULL, arrayMap(x -> x / 3, range(9))) AS Nullable(QBit(Float64, 9)))",
    "qbit_i8": "CAST([toInt8(number), -1] AS QBit(Int8, 2))",
}
SETTINGS = {"allow_experimental_time_time64_type": "1", "enable_time_time64_type": "1",
            "allow_suspicious_low_cardinality_types": "1", "allow_experimental_qbit_type": "1"}


def raw(server, sql: str, **params) -> bytes:
    r = server.query(sql, params={"default_format": "Native", **SETTINGS, **params})
    assert r.status_code == 200, r.text
    return r.content


def varint(value: int) -> bytes:
    return native._put_varint(value)


def expected_single_column(server, expr: str, rows: int):
    """A function of the revision: what clickhouse-server writes for `SELECT expr AS c FROM numbers(rows)`."""
    text = raw(server, f"SELECT {expr} AS c FROM numbers({rows})")
    pos = 0
    columns, pos = native._varint(text, pos)
    count, pos = native._varint(text, pos)
    assert (columns, count) == (1, rows)
    _, pos = native._string(text, pos)
    type_name, pos = native._string(text, pos)
    if type_name == b"DateTime":  # revision 0 drops a top-level DateTime's time zone
        type_name = raw(server, f"SELECT toTypeName({expr}) FROM numbers(1)", default_format="RawBLOB")

    def at(revision: int) -> bytes:
        name = b"DateTime" if revision < 54337 and type_name.startswith(b"DateTime(") else type_name
        info = INFO_54480 if revision >= 54480 else INFO
        custom = b"\x00" if revision >= 54454 else b""
        return info + b"\x01" + varint(rows) + b"\x01c" + varint(len(name)) + name + custom + text[pos:]

    return at


@pytest.mark.integration
@pytest.mark.parametrize("key", sorted(EXPRS))
def test_every_supported_type_is_reframed_exactly(server, key):
    expr = EXPRS[key]
    for rows in (1, 4, 300):
        sql = f"SELECT {expr} AS c FROM numbers({rows})"
        binary = raw(server, sql, **BINARY)
        expected_at = expected_single_column(server, expr, rows)
        for revision in (54460, 54480, 54491, 54336):
            expected = expected_at(revision)
            if revision == 54460:  # the server itself, as clickhouse-go asks for it
                assert raw(server, sql, client_protocol_version="54460") == expected, (key, rows)
            tc = native.Transcoder(revision)
            if revision < 54405 and b"LowCardinality" in expected:  # removed for such clients: unsupported
                with pytest.raises(ClickHouseError) as err:
                    tc.feed(binary)
                assert err.value.code == 48
                continue
            # fed in odd-sized pieces: blocks cut anywhere are completed by later pieces
            got = b"".join(tc.feed(binary[i:i + 13]) for i in range(0, len(binary), 13)) + tc.finish()
            assert got == expected, (key, rows, revision)


@pytest.mark.integration
def test_many_blocks_and_columns_streamed(server):
    sql = ("SELECT number AS n, toString(number) AS s, [number, 1] AS a, toLowCardinality(toString(number % 7)) AS l, "
           "if(number % 3 = 0, NULL, number) AS x FROM numbers(400000) SETTINGS max_block_size = 7000")
    binary = raw(server, sql, **BINARY)
    tc = native.Transcoder(54460)
    local = tc.feed(binary) + tc.finish()
    served = raw(server, sql, client_protocol_version="54460")
    assert len(served) > 8 << 20  # more than one streamed batch
    assert served == local
    assert served.count(INFO + b"\x05") == 400000 // 7000 + 1  # one BlockInfo per block


@pytest.mark.integration
def test_revision_zero_and_other_formats_are_untouched(server):
    sql = "SELECT number, toDateTime(number, 'UTC') AS t FROM numbers(10)"
    plain = raw(server, sql)
    assert raw(server, sql, client_protocol_version="0") == plain
    assert not plain.startswith(INFO)
    tsv = server.query(sql, params={"client_protocol_version": "54460", "default_format": "TSV"})
    assert tsv.status_code == 200 and tsv.text.startswith("0\t1970-01-01 00:00:00\n")


@pytest.mark.integration
def test_bad_revision_is_a_parse_error(server):
    r = server.query("SELECT 1", params={"client_protocol_version": "abc", "default_format": "Native"})
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "6", r.text
    assert "Cannot parse string 'abc' as UInt64" in r.text


@pytest.mark.integration
@pytest.mark.parametrize("expr,what", [
    ("'{\"a\": 1}'::JSON", "type JSON"), ("1::Dynamic", "type Dynamic"), ("1::Variant(UInt8, String)", "type Variant"),
    ("sumState(1)", "type AggregateFunction"),
])
def test_types_that_cannot_be_reframed_are_an_error_not_wrong_bytes(server, expr, what):
    r = server.query(f"SELECT {expr} AS c", params={"client_protocol_version": "54460", "default_format": "Native"})
    assert r.status_code == 501, r.text
    assert r.headers["X-ClickHouse-Exception-Code"] == "48"
    assert f"{what} cannot be sent in Native format for client_protocol_version=54460" in r.text
    assert "(NOT_IMPLEMENTED)" in r.text


@pytest.mark.integration
def test_low_cardinality_for_revisions_before_it_existed(server):
    r = server.query("SELECT toLowCardinality('a') AS c",
                     params={"client_protocol_version": "54400", "default_format": "Native"})
    assert r.status_code == 501 and "LowCardinality" in r.text
    ok = raw(server, "SELECT 'a' AS c", client_protocol_version="54400")
    assert ok == INFO + b"\x01\x01\x01c\x06String\x01a"  # no has_custom_serialization before 54454


@pytest.mark.integration
def test_binary_types_requested_by_the_client_stay_binary(server):
    out = raw(server, "SELECT toDateTime(0, 'UTC') AS t", client_protocol_version="54460", **BINARY)
    assert out == INFO + b"\x01\x01\x01t\x12\x03UTC\x00\x00\x00\x00\x00"
    r = server.query("SELECT 1 AS x SETTINGS output_format_native_encode_types_in_binary_format = 0",
                     params={"client_protocol_version": "54460", "default_format": "Native"})
    assert r.status_code == 501, r.text


@pytest.mark.integration
def test_sessions_keep_their_own_type_encoding(server):
    session = {"session_id": "native-revision-test"}
    out = raw(server, "SELECT 1::UInt8 AS x", client_protocol_version="54460", **session)
    assert out == INFO + b"\x01\x01\x01x\x05UInt8\x00\x01"
    # the setting the server used for re-framing is not left behind in the session
    assert raw(server, "SELECT 1::UInt8 AS x", **session) == b"\x01\x01\x01x\x05UInt8\x01"
    # a SET the client sends (with client_protocol_version, as clickhouse-go does) is kept
    r = server.query("SET output_format_native_encode_types_in_binary_format = 1",
                     params={"client_protocol_version": "54460", **session})
    assert r.status_code == 200, r.text
    assert raw(server, "SELECT 1::UInt8 AS x", client_protocol_version="54460", **session) == INFO + b"\x01\x01\x01x\x01\x00\x01"
    assert raw(server, "SELECT 1::UInt8 AS x", **session) == b"\x01\x01\x01x\x01\x01"
    server.query("SELECT 1", params={**session, "close_session": "1"})


@pytest.mark.integration
def test_read_only_user_and_get_requests(server):
    r = requests.get(server.url, params={"query": "SELECT 'x' AS s", "client_protocol_version": "54460",
                                         "default_format": "Native"}, auth=server.bi, timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == INFO + b"\x01\x01\x01s\x06String\x00\x01x"


# ---- the transcoder on its own ----------------------------------------------------------------

def _lc_two_groups() -> bytes:
    """LowCardinality(String), 3 rows written as two index groups (as a reader must accept)."""
    u64 = struct.Struct("<Q").pack
    data = u64(1)  # keys serialization version
    data += u64(0x600) + u64(2) + b"\x00\x01a" + u64(2) + b"\x01\x00"  # keys ['', 'a'], rows [1, 0]
    data += u64(0x200) + u64(1) + b"\x01b" + u64(1) + b"\x00"  # additional key ['b'], rows [0]
    return b"\x01\x03\x01c\x26\x15" + data


@pytest.mark.unit
def test_low_cardinality_with_several_index_groups():
    block = _lc_two_groups()
    out = native.Transcoder(54460).feed(block + block)
    body = block[6:]
    assert out == 2 * (INFO + b"\x01\x03\x01c\x16LowCardinality(String)\x00" + body)


@pytest.mark.unit
def test_every_cut_of_the_input_gives_the_same_output():
    # a String column and a Nullable(UInt32) column of 2 rows after the LowCardinality block
    block = _lc_two_groups() + b"\x02\x02" + b"\x01a\x15" + b"\x01x\x02yz" + b"\x01b\x23\x03" + b"\x00\x01" \
        + b"\x05\x00\x00\x00\x06\x00\x00\x00"
    whole = native.Transcoder(54460).feed(block)
    assert whole.count(INFO) == 2
    for cut in range(1, len(block)):
        tc = native.Transcoder(54460)
        assert tc.feed(block[:cut]) + tc.feed(block[cut:]) + tc.finish() == whole, cut


@pytest.mark.unit
def test_truncated_output_is_an_error():
    tc = native.Transcoder(54460)
    assert tc.feed(b"\x01\x02\x01c\x15\x01a") == b""
    with pytest.raises(ClickHouseError) as err:
        tc.finish()
    assert err.value.code == 49 and "ends inside a block" in err.value.message


@pytest.mark.unit
def test_unknown_type_codes_are_errors():
    with pytest.raises(ClickHouseError) as err:
        native.Transcoder(54460).feed(b"\x01\x01\x01c\x7f\x00")
    assert err.value.code == 49 and "unknown binary type code 0x7f" in err.value.message


@pytest.mark.unit
@pytest.mark.parametrize("value,revision", [(None, 0), ("", 0), ("0", 0), ("54460", 54460)])
def test_requested_revision(value, revision):
    assert native.requested_revision(value) == revision


@pytest.mark.unit
@pytest.mark.parametrize("value", ["-1", "1e5", "x", str(1 << 64)])
def test_requested_revision_rejects(value):
    with pytest.raises(ClickHouseError) as err:
        native.requested_revision(value)
    assert err.value.code == 6


@pytest.mark.integration
def test_clickhouse_connect_negotiates_a_revision_and_gets_time_zones(server):
    """clickhouse-connect probes client_protocol_version=54405 and keeps it when the answer has a
    BlockInfo, as clickhouse-server's does; top-level DateTime columns then keep their time zone."""
    import datetime as dt
    import zoneinfo

    import clickhouse_connect

    c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.admin[0],
                                      password=server.admin[1])
    try:
        assert c.protocol_version == 54405
        row = c.query("SELECT toDateTime(0, 'Asia/Tokyo') AS t, toLowCardinality('a') AS l, "
                      "map('k', [1, 2]) AS m").result_rows[0]
        assert row == (dt.datetime(1970, 1, 1, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")), "a", {"k": [1, 2]})
        df = c.query_df("SELECT number AS n, toString(number) AS s FROM numbers(100000)")
        assert len(df) == 100000 and df["s"].iloc[-1] == "99999"
    finally:
        c.close()


@pytest.mark.integration
def test_url_readonly_and_bad_type_encoding_value(server):
    out = raw(server, "SELECT 1::UInt8 AS x", client_protocol_version="54460", readonly="1")
    assert out == INFO + b"\x01\x01\x01x\x05UInt8\x00\x01"
    r = server.query("SELECT 1", params={"client_protocol_version": "54460", "default_format": "Native",
                                         "output_format_native_encode_types_in_binary_format": "maybe"})
    assert r.status_code != 200 and "maybe" in r.text


@pytest.mark.integration
def test_qbit_round_trips_through_clickhouse_connect(server, table_name):
    """clickhouse-connect negotiates revision 54405, so QBit columns go through the re-framing."""
    import clickhouse_connect

    c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.admin[0],
                                      password=server.admin[1], settings={"allow_experimental_qbit_type": 1})
    try:
        c.command(f"CREATE TABLE {table_name} (id UInt32, v QBit(Float32, 4), w Nullable(QBit(BFloat16, 9))) "
                  "ENGINE = MergeTree ORDER BY id")
        c.command(f"INSERT INTO {table_name} VALUES (1, [1, 2.5, -3, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9])")
        c.insert(table_name, [[2, [0.125, 0.0, 0.0, 7.0], None]], column_names=["id", "v", "w"])
        assert c.query(f"SELECT id, v, w FROM {table_name} ORDER BY id").result_rows == [
            (1, [1.0, 2.5, -3.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]),
            (2, [0.125, 0.0, 0.0, 7.0], None)]
    finally:
        c.close()

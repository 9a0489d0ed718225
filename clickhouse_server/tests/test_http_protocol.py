"""The ClickHouse HTTP interface as clickhouse-server defines it: URLs, parameters, headers, formats."""
from __future__ import annotations

import gzip
import io
import json
import zlib

import lz4.frame
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import requests

pytestmark = pytest.mark.integration


def test_ping_and_root(server):
    assert requests.get(server.url + "ping").text == "Ok."+"\n"
    assert requests.get(server.url).text == "Ok.\n"
    r = requests.get(server.url + "nope")
    assert r.status_code == 404


def test_get_and_post_query_forms(server):
    assert server.ok("SELECT 1 + 1", method="GET") == "2\n"
    assert server.ok("SELECT 40 + 2") == "42\n"
    # body only
    r = requests.post(server.url, data=b"SELECT 'body'", auth=server.admin)
    assert r.text == "body\n"
    # query parameter + "\n" + body, as clickhouse-server concatenates them
    r = requests.post(server.url, params={"query": "SELECT number FROM numbers(10)"},
                      data=b"WHERE number > 6 FORMAT CSV", auth=server.admin)
    assert r.text == "7\n8\n9\n"


def test_response_headers(server):
    r = server.query("SELECT number FROM numbers(5)", params={"query_id": "my-query-1"})
    assert r.status_code == 200
    assert r.headers["X-ClickHouse-Query-Id"] == "my-query-1"
    assert r.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert r.headers["Content-Type"].startswith("text/tab-separated-values")
    assert r.headers["X-ClickHouse-Timezone"]
    assert r.headers["X-ClickHouse-Server-Display-Name"]
    summary = json.loads(r.headers["X-ClickHouse-Summary"])
    for key in ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read",
                "result_rows", "result_bytes", "elapsed_ns"):
        assert isinstance(summary[key], str) and summary[key].isdigit(), key
    assert summary["result_rows"] == "5"
    assert r.text == "0\n1\n2\n3\n4\n"
    # a generated query id when none is given
    assert len(server.query("SELECT 1").headers["X-ClickHouse-Query-Id"]) == 36


def test_default_format_and_format_clause(server):
    r = server.query("SELECT 1 AS a, 'x' AS b", params={"default_format": "JSONCompact"})
    assert r.headers["X-ClickHouse-Format"] == "JSONCompact"
    assert json.loads(r.text)["data"] == [[1, "x"]]
    r = server.query("SELECT 1 AS a FORMAT JSONEachRow", params={"default_format": "CSV"})
    assert r.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert r.text == '{"a":1}\n'


def test_query_parameters(server):
    r = server.query("SELECT {n:UInt32} * 2 AS x, {s:String} AS s, {arr:Array(UInt8)} AS arr FORMAT JSONEachRow",
                     params={"param_n": "21", "param_s": "it's", "param_arr": "[1,2,3]"})
    assert json.loads(r.text) == {"x": 42, "s": "it's", "arr": [1, 2, 3]}


def test_settings_in_url(server):
    assert server.ok("SELECT getSetting('max_threads')", params={"max_threads": "3"}) == "3\n"
    # not carried over to the next request (no session)
    assert server.ok("SELECT getSetting('max_threads')") != "3\n"
    r = server.query("SELECT number FROM numbers(100)", params={"max_result_rows": "10", "result_overflow_mode": "throw"})
    assert r.status_code != 200 and r.headers["X-ClickHouse-Exception-Code"] == "396"


def test_unknown_setting_rejected_like_clickhouse(server):
    r = server.query("SELECT 1", params={"no_such_setting_xyz": "1"})
    assert r.status_code == 404
    assert r.headers["X-ClickHouse-Exception-Code"] == "115"
    assert "Unknown setting 'no_such_setting_xyz'" in r.text and "(UNKNOWN_SETTING)" in r.text


def test_client_only_parameters_are_ignored(server):
    params = {"wait_end_of_query": "1", "send_progress_in_http_headers": "1", "http_headers_progress_interval_ms": "1000",
              "enable_http_compression": "1", "cancel_http_readonly_queries_on_client_close": "1", "extremes": "0",
              "compress": "0", "decompress": "0", "buffer_size": "1048576", "client_protocol_version": "54405",
              "stacktrace": "0", "quota_key": "q", "database": "default", "session_check": "0"}
    assert server.ok("SELECT 7", params=params) == "7\n"


def test_database_parameter(server):
    server.ok("CREATE DATABASE IF NOT EXISTS analytics_db")
    server.ok("CREATE TABLE IF NOT EXISTS analytics_db.d (x UInt8) ENGINE=MergeTree ORDER BY x")
    server.ok("INSERT INTO analytics_db.d VALUES (5)")
    assert server.ok("SELECT currentDatabase(), sum(x) FROM d", params={"database": "analytics_db"}) == "analytics_db\t5\n"
    r = server.query("SELECT 1", params={"database": "no_such_db"})
    assert r.status_code == 404 and r.headers["X-ClickHouse-Exception-Code"] == "81"


SRC = "SELECT number AS id, toString(number) AS s, number / 4 AS f FROM numbers(100000)"


@pytest.mark.parametrize("fmt", ["Native", "RowBinaryWithNamesAndTypes", "JSON", "JSONEachRow", "JSONCompact",
                                 "TabSeparated", "TabSeparatedWithNames", "CSV", "CSVWithNames", "Parquet",
                                 "Arrow", "ArrowStream"])
def test_output_and_input_formats_round_trip(server, table_name, fmt):
    """Every format reads out and goes back in through INSERT ... FORMAT X with the data in the body."""
    r = server.query(f"{SRC} FORMAT {fmt}")
    assert r.status_code == 200, r.text
    assert r.headers["X-ClickHouse-Format"] == fmt
    body = r.content
    if fmt == "Parquet":
        assert pq.read_table(io.BytesIO(body)).num_rows == 100000
    elif fmt == "Arrow":
        assert ipc.open_file(pa.BufferReader(body)).read_all().num_rows == 100000
    elif fmt == "ArrowStream":
        assert ipc.open_stream(pa.BufferReader(body)).read_all().num_rows == 100000
    elif fmt == "JSON":
        assert json.loads(body)["rows"] == 100000
    elif fmt == "JSONEachRow":
        assert json.loads(body.splitlines()[-1]) == {"id": 99999, "s": "99999", "f": 24999.75}
    server.ok(f"CREATE TABLE {table_name} (id UInt64, s String, f Float64) ENGINE=MergeTree ORDER BY id")
    if fmt in ("JSON", "JSONCompact"):  # output-only framing differs; insert the same rows via JSONEachRow
        return
    r = server.query(f"INSERT INTO {table_name} FORMAT {fmt}", data=body)
    assert r.status_code == 200, r.text
    assert json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"] == "100000"
    assert server.ok(f"SELECT count(), sum(id), sum(f), max(s) FROM {table_name}") == "100000\t4999950000\t1249987500\t99999\n"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "lz4", "zstd"])
def test_compressed_request_bodies(server, table_name, encoding):
    rows = "".join(f"{i},name{i}\n" for i in range(50000)).encode()
    if encoding == "gzip":
        data = gzip.compress(rows)
    elif encoding == "deflate":
        data = zlib.compress(rows)
    elif encoding == "lz4":
        data = lz4.frame.compress(rows)
    else:
        from backports import zstd
        data = zstd.compress(rows)
    server.ok(f"CREATE TABLE {table_name} (id UInt32, name String) ENGINE=MergeTree ORDER BY id")
    r = server.query(f"INSERT INTO {table_name} FORMAT CSV", data=data, headers={"Content-Encoding": encoding})
    assert r.status_code == 200, r.text
    assert server.ok(f"SELECT count(), sum(id), max(name) FROM {table_name}") == "50000\t1249975000\tname9999\n"


def test_insert_with_sql_and_data_in_body(server, table_name):
    server.ok(f"CREATE TABLE {table_name} (a UInt8, b String) ENGINE=Memory")
    r = requests.post(server.url, data=f"INSERT INTO {table_name} FORMAT TabSeparated\n1\tx\n2\ty\n".encode(), auth=server.admin)
    assert r.status_code == 200, r.text
    r = requests.post(server.url, params={"query": f"INSERT INTO {table_name} VALUES"}, data=b"(3,'z'),(4,'w')", auth=server.admin)
    assert r.status_code == 200, r.text
    r = requests.post(server.url, data=f"INSERT INTO {table_name} VALUES (5, 'v')".encode(), auth=server.admin)
    assert r.status_code == 200, r.text
    assert server.ok(f"SELECT groupArray(a), groupArray(b) FROM (SELECT * FROM {table_name} ORDER BY a)") == \
        "[1,2,3,4,5]\t['x','y','z','w','v']\n"


def test_large_streamed_result(server):
    r = server.query("SELECT number FROM numbers(5000000) FORMAT RowBinary", stream=True)
    assert r.status_code == 200
    assert "Content-Length" not in r.headers  # streamed in chunks, not buffered whole
    total = sum(len(c) for c in r.iter_content(1 << 20))
    assert total == 5000000 * 8


def test_authentication_methods(server):
    assert server.ok("SELECT currentDatabase()", auth=None, params={"user": server.admin[0], "password": server.admin[1]}) == "default\n"
    r = requests.post(server.url, data=b"SELECT 3", headers={"X-ClickHouse-User": server.admin[0], "X-ClickHouse-Key": server.admin[1]})
    assert r.text == "3\n"
    for bad in [dict(auth=(server.admin[0], "wrong")), dict(auth=None), dict(auth=("nobody", "x")),
                dict(auth=None, headers={"X-ClickHouse-User": server.admin[0], "X-ClickHouse-Key": "nope"})]:
        r = server.query("SELECT 1", **bad)
        assert r.status_code == 403, bad
        assert r.headers["X-ClickHouse-Exception-Code"] == "516"
        assert "(AUTHENTICATION_FAILED)" in r.text


ALL_BYTES = bytes(range(256))


def test_binary_bytes_in_the_sql_reach_the_engine_unchanged(server):
    """The SQL is bytes, as clickhouse-server reads it: invalid UTF-8 is not replaced with U+FFFD."""
    r = requests.post(server.url, data=b"SELECT hex($x$\xff\xfe$x$)", auth=server.admin)
    assert r.content == b"FFFE\n"
    r = requests.post(server.url, data=b"SELECT $x$" + ALL_BYTES + b"$x$ FORMAT RawBLOB", auth=server.admin)
    assert r.content == ALL_BYTES
    # in the URL's `query` parameter, and there joined with a body
    r = requests.post(server.url + "?query=SELECT%20hex('%FF%FE'),%20'%C3%BC'", auth=server.admin)
    assert r.content == "FFFE\tü\n".encode()
    r = requests.post(server.url + "?query=SELECT%20hex(concat('%FF',", data=b"'\xfe'))", auth=server.admin)
    assert r.content == b"FFFE\n"
    # in a multipart/form-data `query` field
    r = requests.post(server.url, files={"query": (None, b"SELECT hex($x$\x80\x00\xc3$x$)")}, auth=server.admin)
    assert r.content == b"8000C3\n"


def test_parquet_bytes_embedded_in_a_query(server):
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "s": ["a", "ü", "c"]}), buf)
    data = buf.getvalue()
    assert any(b > 0x7F for b in data) and b"$pq$" not in data
    r = requests.post(server.url, data=b"SELECT * FROM format(Parquet, $pq$" + data + b"$pq$) FORMAT CSV",
                      auth=server.admin)
    assert r.status_code == 200, r.text
    assert r.text == '1,"a"\n2,"ü"\n3,"c"\n'


def test_statements_without_a_result_answer_with_a_summary_only(server, table_name):
    """As clickhouse-server: X-ClickHouse-Format only for a result set; clients that see it take
    the (empty) body as the answer instead of the summary."""
    t = table_name
    for sql, data, written in [
        (f"DROP TABLE IF EXISTS {t}", None, "0"), ("SET max_threads = 2", None, "0"), ("USE default", None, "0"),
        (f"CREATE TABLE {t} (a UInt8) ENGINE = MergeTree ORDER BY a", None, "0"),
        (f"INSERT INTO {t} VALUES (1), (2)", None, "2"), (f"INSERT INTO {t} FORMAT CSV", b"3\n", "1"),
        (f"INSERT INTO {t} SELECT 4", None, "1"), (f"OPTIMIZE TABLE {t} FINAL", None, "0"),
        (f"ALTER TABLE {t} DELETE WHERE a = 1 SETTINGS mutations_sync = 1", None, "0"),
    ]:
        r = server.query(sql, data=data)
        assert r.status_code == 200, (sql, r.text)
        assert "X-ClickHouse-Format" not in r.headers, sql
        assert r.headers["Content-Type"] == "text/plain; charset=UTF-8", sql
        assert r.content == b"", sql
        assert json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"] == written, sql
    assert server.ok(f"SELECT groupArray(a) FROM {t}") == "[2,3,4]\n"


def test_an_empty_result_set_keeps_its_format(server):
    r = server.query("SELECT 1 WHERE 0")
    assert (r.content, r.headers["X-ClickHouse-Format"]) == (b"", "TabSeparated")
    r = server.query("SHOW TABLES FROM system LIKE 'no_such_%'", params={"default_format": "JSONEachRow"})
    assert (r.content, r.headers["X-ClickHouse-Format"]) == (b"", "JSONEachRow")

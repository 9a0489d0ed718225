"""Form-encoded requests: the query and its param_<name> values in a multipart/form-data body.

clickhouse-connect sends a query this way when its bind parameters are too long for the URL
(over 4 KiB, e.g. an Array(String) of a few hundred UUIDs) and, with
`form_encode_query_params=True`, for every query. The server must read the form as
clickhouse-server does, not run the body as SQL.
"""
from __future__ import annotations

import datetime as dt
import gzip
import uuid

import clickhouse_connect
import pytest
import requests
from clickhouse_connect.driver._backend import http_sync
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.external import ExternalData

from .conftest import ADMIN, BI, make_server
from .test_errors import assert_error

pytestmark = pytest.mark.integration

IN_IDS = "SELECT count() FROM {table:Identifier} WHERE id IN {ids:Array(String)}"


@pytest.fixture
def form_fields(monkeypatch):
    """The form fields of each request clickhouse-connect sends (None: not a form)."""
    sent = []
    plan_fields = http_sync._plan_fields

    def spy(plan):
        fields = plan_fields(plan)
        sent.append(None if fields is None else sorted(fields))
        return fields

    monkeypatch.setattr(http_sync, "_plan_fields", spy)
    return sent


@pytest.fixture
def uuid_table(client, table_name):
    """20,000 UUID strings; returns (table, ids)."""
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    client.command(f"CREATE TABLE {table_name} (id String) ENGINE=MergeTree ORDER BY id")
    client.insert(table_name, [[i] for i in ids], column_names=["id"])
    return table_name, ids


def form_client(server, **kw):
    return clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=ADMIN[0],
                                         password=ADMIN[1], **kw)


def post_form(server, fields, params=None, auth=ADMIN, **kw):
    """POST a multipart/form-data body: fields are (name, value) text fields or (name, (filename, bytes))."""
    files = [(k, v if isinstance(v, tuple) else (None, v)) for k, v in fields]
    return requests.post(server.url, params=params, files=files, auth=auth, timeout=60, **kw)


@pytest.mark.parametrize("present,absent", [(300, 0), (280, 20), (9_000, 1_000)])
def test_large_array_parameter_exact_count(client, uuid_table, form_fields, present, absent):
    table, ids = uuid_table
    wanted = ids[:present] + [str(uuid.uuid4()) for _ in range(absent)]
    result = client.query(IN_IDS, parameters={"table": table, "ids": wanted})
    assert result.result_rows == [(present,)]
    assert form_fields[-1] == ["param_ids", "param_table", "query"]  # it really went as a form


def test_ten_thousand_uuids_as_in_the_bug_report(client, form_fields):
    ids = [str(uuid.uuid4()) for _ in range(10_000)]
    ids[1234] = ids[0]
    sql = "SELECT length({ids:Array(String)}), length(arrayDistinct({ids:Array(String)})), " \
          "countIf(toString(dummy) IN {ids:Array(String)}), {ids:Array(String)}[1235] FROM system.one"
    assert client.query(sql, parameters={"ids": ids}).result_rows == [(10_000, 9_999, 0, ids[0])]
    ids[5] = "0"  # system.one's dummy
    assert client.query(sql, parameters={"ids": ids}).result_rows == [(10_000, 9_999, 1, ids[0])]
    assert form_fields[-1] == ["param_ids", "query"]


def test_form_encode_query_params_for_small_queries(server, form_fields):
    c = form_client(server, form_encode_query_params=True)
    try:
        assert c.query("SELECT {a:Int32} + 1, {s:String}, {d:Date}",
                       parameters={"a": 41, "s": "it's\ta\nline", "d": "2024-02-29"}).result_rows == \
            [(42, "it's\ta\nline", dt.date(2024, 2, 29))]
        assert form_fields[-1] == ["param_a", "param_d", "param_s", "query"]
        assert c.query_df("SELECT {n:UInt8} AS n", parameters={"n": 7})["n"].tolist() == [7]
        assert c.raw_query("SELECT {n:UInt8} * 2", parameters={"n": 7}) == b"14\n"
        # the client's session (a temporary table) is seen by form-encoded queries too
        c.command("CREATE TEMPORARY TABLE tmp_form (x UInt32)")
        c.command("INSERT INTO tmp_form SELECT number FROM numbers(10)")
        result = c.query("SELECT count() FROM tmp_form WHERE x >= {lo:UInt32}", parameters={"lo": 4})
        assert result.result_rows == [(6,)]
    finally:
        c.close()


def test_url_settings_with_form_params_from_the_client(client, uuid_table, form_fields):
    table, ids = uuid_table
    result = client.query(
        "SELECT count(), getSetting('max_threads'), getSetting('max_block_size') "
        "FROM {table:Identifier} WHERE id IN {ids:Array(String)}",
        parameters={"table": table, "ids": ids[:500]}, settings={"max_threads": 3, "max_block_size": 1234})
    assert result.result_rows == [(500, 3, 1234)]
    assert form_fields[-1] == ["param_ids", "param_table", "query"]


def test_url_and_form_parameters_combine_as_in_clickhouse_server(server):
    # the query is the URL's `query` followed (no separator) by the form's; a param_ in the URL wins
    # over the same param_ in the form; settings come only from the URL, a form field is not one
    r = post_form(server, [("query", "{b:UInt8}, getSetting('max_threads'), {c:String}"),
                           ("param_a", "100"), ("param_b", "2"), ("param_c", "from the form"),
                           ("max_threads", "5"), ("database", "no_such_database")],
                  params={"query": "SELECT {a:UInt8} + ", "param_a": "1", "max_threads": "3"})
    assert r.status_code == 200, r.text
    assert r.text == "3\t3\tfrom the form\n"
    # two `query` fields are joined too; the first of two equal param_ fields wins
    r = post_form(server, [("query", "SELECT {x:UInt8}"), ("query", " * 10"), ("param_x", "4"), ("param_x", "9")])
    assert r.status_code == 200 and r.text == "40\n", r.text
    # with a form, URL parameters ending in _format are not settings (clickhouse-server keeps such
    # names for external tables), so date_time_output_format=iso does not apply
    sql = "SELECT toDateTime('2024-01-02 03:04:05', 'UTC')"
    assert server.ok(sql, params={"date_time_output_format": "iso"}) == "2024-01-02T03:04:05Z\n"
    r = post_form(server, [("query", sql)], params={"date_time_output_format": "iso"})
    assert r.status_code == 200 and r.text == "2024-01-02 03:04:05\n", r.text
    # the response is what a body query gives: format, headers and summary
    r = post_form(server, [("query", "SELECT number FROM numbers({n:UInt8}) FORMAT JSONEachRow"), ("param_n", "3")],
                  params={"query_id": "form-query-id"})
    assert r.status_code == 200 and r.text.splitlines() == ['{"number":0}', '{"number":1}', '{"number":2}']
    assert r.headers["X-ClickHouse-Query-Id"] == "form-query-id"
    assert r.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert '"result_rows":"3"' in r.headers["X-ClickHouse-Summary"]


def test_form_insert_and_readonly(server, table_name):
    server.ok(f"CREATE TABLE {table_name} (a UInt32, s String) ENGINE=MergeTree ORDER BY a")
    r = post_form(server, [("query", f"INSERT INTO {table_name} VALUES ({{a:UInt32}}, {{s:String}})"),
                           ("param_a", "7"), ("param_s", "seven")])
    assert r.status_code == 200, r.text
    r = post_form(server, [("query", f"INSERT INTO {table_name} FORMAT CSV\n8,eight\n9,nine\n")])
    assert r.status_code == 200, r.text
    assert server.ok(f"SELECT a, s FROM {table_name} ORDER BY a") == "7\tseven\n8\teight\n9\tnine\n"
    # the read-only user stays read-only when the query comes in a form
    r = post_form(server, [("query", f"INSERT INTO {table_name} VALUES ({{a:UInt32}}, 'x')"), ("param_a", "1")],
                  auth=BI)
    assert_error(r, 500, 164, "READONLY")
    r = post_form(server, [("query", f"SELECT count() FROM {table_name} WHERE a > {{a:UInt32}}"), ("param_a", "7")],
                  auth=BI)
    assert r.status_code == 200 and r.text == "2\n", r.text


def test_urlencoded_body_is_still_sql(server):
    # `curl -d 'SELECT 1'` sends application/x-www-form-urlencoded: clickhouse-server runs it as SQL
    r = requests.post(server.url, data=b"SELECT 1 + 1", auth=ADMIN, timeout=60,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text == "2\n", r.text


def test_compressed_form_body(server):
    body, ctype = requests.models.RequestEncodingMixin._encode_files(
        [("query", (None, "SELECT {n:UInt16} + 1")), ("param_n", (None, "999"))], {})
    r = requests.post(server.url, data=gzip.compress(body), auth=ADMIN, timeout=60,
                      headers={"Content-Type": ctype, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.text == "1000\n", r.text


def test_external_data_is_refused_clearly(server, client):
    ext = ExternalData(data=b"1\n2\n3\n", file_name="ext.tsv", structure=["x UInt8"])
    for c in (client, form_client(server, form_encode_query_params=True)):
        with pytest.raises(DatabaseError) as info:
            c.query("SELECT count() FROM ext", external_data=ext)
        assert "Code: 48." in str(info.value) and "External data is not supported" in str(info.value)
        assert "file field 'ext' (filename 'ext.tsv')" in str(info.value)
        assert c.query("SELECT 42").result_rows == [(42,)]  # the client and its session keep working
    r = post_form(server, [("query", "SELECT * FROM t"), ("t", ("t.tsv", b"1\n" * 100_000))],
                  params={"t_structure": "x UInt8"})
    assert_error(r, 501, 48, "NOT_IMPLEMENTED")
    assert "External data is not supported" in r.text


def test_malformed_forms(server):
    def raw(body: bytes, ctype: str):
        return requests.post(server.url, data=body, auth=ADMIN, timeout=60, headers={"Content-Type": ctype})

    r = raw(b"SELECT 1", "multipart/form-data")
    assert_error(r, 400, 36, "BAD_ARGUMENTS")
    assert "no boundary" in r.text
    r = raw(b"SELECT 1", "multipart/form-data; boundary=xyz")
    assert_error(r, 400, 36, "BAD_ARGUMENTS")
    truncated = b'--xyz\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT 1\r\n--xy'
    r = raw(truncated, "multipart/form-data; boundary=xyz")
    assert_error(r, 400, 36, "BAD_ARGUMENTS")
    assert "closing boundary" in r.text
    r = raw(b"--xyz--\r\n", "multipart/form-data; boundary=xyz")
    assert_error(r, 400, 62, "SYNTAX_ERROR")  # an empty form is an empty query
    ok = b'--xyz\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT 1\r\n--xyz--\r\n'
    assert raw(ok, "multipart/form-data; boundary=xyz").text == "1\n"


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server with a 1 MiB body limit."""
    srv = make_server(tmp_path_factory, "chsmall", CLICKHOUSE_MAX_BODY_BYTES=1 << 20).start()
    yield srv
    assert srv.stop() == 0, srv.log()


def test_oversized_form_body(small_server):
    c = form_client(small_server)
    try:
        ids = [str(uuid.uuid4()) for _ in range(10_000)]  # ~0.4 MB: under the limit
        assert c.query("SELECT length({ids:Array(String)})", parameters={"ids": ids}).result_rows == [(10_000,)]
        ids = [str(uuid.uuid4()) for _ in range(30_000)]  # ~1.2 MB: over it
        with pytest.raises(DatabaseError) as info:
            c.query("SELECT length({ids:Array(String)})", parameters={"ids": ids})
        assert "Code: 229." in str(info.value) and "QUERY_IS_TOO_LARGE" in str(info.value)
        assert c.query("SELECT 1").result_rows == [(1,)]
    finally:
        c.close()
    fields = [("query", (None, "SELECT length({v:String})")), ("param_v", (None, "x" * (2 << 20)))]
    body, ctype = requests.models.RequestEncodingMixin._encode_files(fields, {})
    r = requests.post(small_server.url, data=body, auth=ADMIN, timeout=60, headers={"Content-Type": ctype})
    assert_error(r, 413, 229, "QUERY_IS_TOO_LARGE")
    # chunked (no Content-Length): the limit holds while the form is read
    r = requests.post(small_server.url, data=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                      auth=ADMIN, timeout=60, headers={"Content-Type": ctype})
    assert_error(r, 413, 229, "QUERY_IS_TOO_LARGE")
    # and on the decoded bytes: a small gzip body that inflates past the limit
    r = requests.post(small_server.url, data=gzip.compress(body), auth=ADMIN, timeout=60,
                      headers={"Content-Type": ctype, "Content-Encoding": "gzip"})
    assert_error(r, 413, 229, "QUERY_IS_TOO_LARGE")
    assert small_server.ok("SELECT 'alive'") == "alive\n"

"""Bad input gets ClickHouse's error text, code and HTTP status, and the server keeps serving."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def assert_error(r, status: int, code: int, name: str):
    assert r.status_code == status, r.text
    assert r.headers["X-ClickHouse-Exception-Code"] == str(code)
    assert r.text.startswith(f"Code: {code}. DB::Exception: "), r.text
    assert f"({name}) (version " in r.text


def still_serving(server):
    assert server.ok("SELECT 'alive'") == "alive\n"


def test_malformed_sql(server):
    assert_error(server.query("SELEC 1"), 400, 62, "SYNTAX_ERROR")
    assert_error(server.query(""), 400, 62, "SYNTAX_ERROR")  # empty query
    still_serving(server)


def test_unknown_table(server):
    assert_error(server.query("SELECT * FROM no_such_table_abc"), 404, 60, "UNKNOWN_TABLE")
    assert_error(server.query("INSERT INTO no_such_table_abc FORMAT CSV", data=b"1\n"), 404, 60, "UNKNOWN_TABLE")
    still_serving(server)


def test_wrong_format_name(server, table_name):
    assert_error(server.query("SELECT 1 FORMAT NoSuchFormat"), 404, 73, "UNKNOWN_FORMAT")
    assert_error(server.query("SELECT 1", params={"default_format": "NoSuchFormat"}), 404, 73, "UNKNOWN_FORMAT")
    server.ok(f"CREATE TABLE {table_name} (a UInt32) ENGINE=MergeTree ORDER BY a")
    assert_error(server.query(f"INSERT INTO {table_name} FORMAT NoSuchFormat", data=b"1\n"), 404, 73, "UNKNOWN_FORMAT")
    still_serving(server)


def test_body_not_matching_its_format(server, table_name):
    server.ok(f"CREATE TABLE {table_name} (a UInt32, b Date) ENGINE=MergeTree ORDER BY a")
    r = server.query(f"INSERT INTO {table_name} FORMAT CSV", data=b"1,2024-01-01\nnot-a-number,xx\n")
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] in {"27", "6", "72", "38"}, r.text
    r = server.query(f"INSERT INTO {table_name} FORMAT Parquet", data=b"definitely not parquet")
    assert r.status_code >= 400 and "DB::Exception" in r.text
    r = server.query(f"INSERT INTO {table_name} FORMAT CSV", data=b"garbage", headers={"Content-Encoding": "gzip"})
    assert_error(r, 500, 271, "CANNOT_DECOMPRESS")
    r = server.query(f"INSERT INTO {table_name} FORMAT CSV", data=b"1,2024-01-01\n", headers={"Content-Encoding": "snappy9"})
    assert_error(r, 500, 89, "UNKNOWN_COMPRESSION_METHOD")
    # nothing from the failed inserts became visible
    assert server.ok(f"SELECT count() FROM {table_name}") == "0\n"
    still_serving(server)


def test_oversized_body(server, table_name):
    server.ok(f"CREATE TABLE {table_name} (a UInt64) ENGINE=MergeTree ORDER BY a")
    big = b"1\n" * (33 * 1024 * 1024)  # 66 MiB > the fixture's 64 MiB limit
    r = server.query(f"INSERT INTO {table_name} FORMAT CSV", data=big)
    assert_error(r, 413, 229, "QUERY_IS_TOO_LARGE")
    # without Content-Length (chunked upload) the limit is enforced while reading
    r = server.query(f"INSERT INTO {table_name} FORMAT CSV", data=(big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)))
    assert_error(r, 413, 229, "QUERY_IS_TOO_LARGE")
    still_serving(server)


# Native blocks of ~1 MB. chDB computes ahead of the blocks fetched from it and drops those when the
# query fails, so without the sleep (~65 ms a block) the error could overtake the rows before it.
THROW_AT = "SELECT number, toString(number) AS s, throwIf(number = {n}, 'boom'), sleepEachRow(0.000001) " \
           "FROM numbers(5000000) SETTINGS max_block_size = 65409"


def test_error_before_the_first_mebibyte_is_a_plain_error(server):
    # as clickhouse-server, which holds the first 1 MiB of output before sending the status line
    assert_error(server.query("SELECT throwIf(number = 1000, 'early') FROM numbers(5000000) FORMAT RowBinary"),
                 500, 395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO")
    assert_error(server.query(THROW_AT.format(n=100000) + " FORMAT Native"), 500, 395,
                 "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO")  # one ~1 MB block before the error


def _tail(r, keep: int = 1 << 16) -> bytes:
    """The last bytes of a response that ends without its final chunk."""
    buf = b""
    with pytest.raises(Exception):  # noqa: B017 - urllib3 ProtocolError (or a wrapper): the server breaks the chunked response
        for chunk in r.raw.stream(1 << 20, decode_content=False):
            buf = (buf + chunk)[-keep:]
    return buf


@pytest.mark.parametrize("n", [200000, 1000000])
def test_error_in_the_middle_of_a_streamed_result(server, n):
    r = server.query(THROW_AT.format(n=n) + " FORMAT Native", stream=True)
    assert r.status_code == 200  # more than 1 MiB had been sent when the error happened
    tag = r.headers["X-ClickHouse-Exception-Tag"].encode()
    assert len(tag) == 16
    # the exact block clickhouse-server 25.11+ writes (WriteBufferFromHTTP1ServerResponse::cancelWithException)
    tail = _tail(r)
    block = tail[tail.rindex(b"\r\n__exception__\r\n" + tag + b"\r\n"):]
    m = re.fullmatch(rb"\r\n__exception__\r\n(.{16})\r\n(.*\n)(\d+) \1\r\n__exception__\r\n", block, re.S)
    assert m is not None, block
    assert m[1] == tag and int(m[3]) == len(m[2])
    assert m[2].startswith(b"Code: 395. DB::Exception: boom: ")
    assert m[2].endswith(b"(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 26.9.2.1)\n")
    still_serving(server)


@pytest.mark.unit
def test_a_long_in_stream_error_is_cut_to_16_kib():
    from clickhouse_server.errors import ClickHouseError

    block = ClickHouseError(395, "x" * 20000).in_stream("t" * 16)
    assert len(block) <= 16 * 1024
    m = re.fullmatch(rb"\r\n__exception__\r\nt{16}\r\n(.*\n)(\d+) t{16}\r\n__exception__\r\n", block, re.S)
    # as clickhouse-server: the message is cut to 16 KiB less 77 bytes (the block's frame with an
    # 8-digit length), then ends with a newline
    assert len(m[1]) == int(m[2]) == 16 * 1024 - 77 + 1
    assert m[1].startswith(b"Code: 395. DB::Exception: xxx") and m[1].endswith(b"x\n")


def test_mid_stream_error_reaches_clickhouse_connect_as_a_stream_failure(client):
    from clickhouse_connect.driver.exceptions import DatabaseError, StreamFailureError

    rows = 0
    with pytest.raises(StreamFailureError) as err:
        with client.query_row_block_stream(THROW_AT.format(n=200000)) as stream:
            for block in stream:
                rows += len(block)
    assert 0 < rows <= 200000  # some rows arrived before the error
    assert err.value.code == 395
    assert str(err.value).startswith("Code: 395. DB::Exception: boom: ")
    # waiting for the end of the query (clickhouse-connect's query()) makes it a plain error again
    with pytest.raises(DatabaseError) as plain:
        client.query(THROW_AT.format(n=200000))
    assert type(plain.value) is DatabaseError and plain.value.code == 395 and "boom" in str(plain.value)


def test_same_query_id_twice_concurrently(server):
    import threading
    t = threading.Thread(target=server.query, args=("SELECT sleep(1)",), kwargs={"params": {"query_id": "dup-1"}})
    t.start()
    import time
    time.sleep(0.3)
    r = server.query("SELECT 1", params={"query_id": "dup-1"})
    t.join()
    assert_error(r, 500, 216, "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING")


def test_native_compression_parameter_refused(server):
    assert_error(server.query("SELECT 1", params={"compress": "1"}), 501, 48, "NOT_IMPLEMENTED")


@pytest.mark.parametrize("missing", ["CLICKHOUSE_DATA_DIR", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"])
def test_missing_configuration_is_one_clear_line(tmp_path, missing):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKHOUSE_")}
    env.update({"CLICKHOUSE_DATA_DIR": str(tmp_path), "CLICKHOUSE_USER": "u", "CLICKHOUSE_PASSWORD": "p",
                "CLICKHOUSE_PORT": "1"})
    del env[missing]
    from .conftest import REPO
    p = subprocess.run([sys.executable, "-m", "clickhouse_server"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and missing in lines[0], p.stderr


def test_memory_bound_fails_the_query_not_the_server(tmp_path_factory):
    """CLICKHOUSE_MAX_MEMORY_PERCENT bounds all queries together: a query needing 1.5x the bound fails
    with MEMORY_LIMIT_EXCEEDED and the server goes on serving (chDB's default bound, 90% of RAM, had
    the kernel kill the whole server beside the stack)."""
    from .conftest import make_server
    srv = make_server(tmp_path_factory, "chmem", CLICKHOUSE_MAX_MEMORY_PERCENT=5).start()
    try:
        assert srv.ok("SELECT value FROM system.server_settings WHERE name = 'max_server_memory_usage_to_ram_ratio'") == "0.05\n"
        bound = int(srv.ok("SELECT value FROM system.server_settings WHERE name = 'max_server_memory_usage'"))
        # groupArray keeps every value in memory (it cannot spill): 1.5x the bound in UInt64s
        r = srv.query(f"SELECT length(groupArray(number)) FROM numbers({bound * 3 // 16})", timeout=120)
        assert_error(r, 500, 241, "MEMORY_LIMIT_EXCEEDED")
        still_serving(srv)
    finally:
        assert srv.stop() == 0, srv.log()


def test_memory_percent_out_of_range_is_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKHOUSE_")}
    env.update({"CLICKHOUSE_DATA_DIR": str(tmp_path), "CLICKHOUSE_USER": "u", "CLICKHOUSE_PASSWORD": "p",
                "CLICKHOUSE_MAX_MEMORY_PERCENT": "100"})
    from .conftest import REPO
    p = subprocess.run([sys.executable, "-m", "clickhouse_server"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == "clickhouse_server: CLICKHOUSE_MAX_MEMORY_PERCENT=100 is out of range [5, 95]", p.stderr

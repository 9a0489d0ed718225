"""Bad input gets ClickHouse's error text, code and HTTP status, and the server keeps serving."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

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


def test_error_before_the_first_batch_is_a_plain_error(server):
    r = server.query("SELECT throwIf(number = 1000, 'early') FROM numbers(5000000) FORMAT RowBinary")
    assert_error(r, 500, 395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO")


def test_error_in_the_middle_of_a_streamed_result(server):
    r = server.query("SELECT number, throwIf(number = 3000000, 'boom') FROM numbers(5000000) FORMAT RowBinary", stream=True)
    assert r.status_code == 200  # headers were already sent when the error happened
    tag = r.headers["X-ClickHouse-Exception-Tag"]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        b"".join(r.iter_content(1 << 20))
    still_serving(server)
    # the tagged exception block clickhouse-connect looks for is in the stream
    raw = requests.post(server.url, params={"query": "SELECT number, throwIf(number = 3000000, 'boom') FROM numbers(5000000) FORMAT RowBinary"},
                        auth=server.admin, stream=True)
    buf = b""
    try:
        for chunk in raw.raw.stream(1 << 20, decode_content=False):
            buf += chunk[-4096:] if len(chunk) > 4096 else chunk
    except Exception:
        pass
    assert b"__exception__\r\n" in buf and b"boom" in buf and raw.headers["X-ClickHouse-Exception-Tag"].encode() in buf
    assert tag


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
    p = subprocess.run([sys.executable, "-m", "stack.clickhouse_server"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and missing in lines[0], p.stderr

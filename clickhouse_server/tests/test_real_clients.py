"""Real clients against the server: clickhouse-connect over HTTP and curl."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess

import clickhouse_connect
import pandas as pd
import pyarrow as pa
import pytest

pytestmark = pytest.mark.integration


def test_connect_runs_its_system_queries(server, client):
    assert client.server_version == client.command("SELECT version()")
    assert client.command("SELECT timezone()") == server.query("SELECT 1").headers["X-ClickHouse-Timezone"]
    assert client.server_tz is not None
    n = client.command("SELECT count() FROM system.settings WHERE name IN ('max_threads', 'readonly')")
    assert n == 2


def test_command_query_and_dataframes(client, table_name):
    client.command(f"CREATE TABLE {table_name} (id UInt32, name String, amount Float64, ts DateTime) "
                   "ENGINE=MergeTree ORDER BY id")
    rows = [[1, "alice", 10.5, dt.datetime(2024, 1, 1, 12, 0)], [2, "bob", 20.25, dt.datetime(2024, 1, 2, 13, 30)]]
    summary = client.insert(table_name, rows, column_names=["id", "name", "amount", "ts"])
    assert summary.written_rows == 2
    df = pd.DataFrame({"id": [3, 4], "name": ["carol", "dave"], "amount": [30.0, 40.0],
                       "ts": pd.to_datetime(["2024-02-01 00:00:00", "2024-02-02 00:00:00"])})
    assert client.insert_df(table_name, df).written_rows == 2
    arrow = pa.table({"id": pa.array([5], pa.uint32()), "name": ["erin"], "amount": [50.0],
                      "ts": pa.array([dt.datetime(2024, 3, 1)], pa.timestamp("s"))})
    assert client.insert_arrow(table_name, arrow).written_rows == 1

    assert client.command(f"SELECT count() FROM {table_name}") == 5
    result = client.query(f"SELECT id, name, amount, ts FROM {table_name} ORDER BY id")
    assert result.result_rows[0] == (1, "alice", 10.5, dt.datetime(2024, 1, 1, 12, 0))
    assert [r[1] for r in result.result_rows] == ["alice", "bob", "carol", "dave", "erin"]
    out = client.query_df(f"SELECT id, amount FROM {table_name} WHERE amount > {{min:Float64}} ORDER BY id",
                          parameters={"min": 20.0})
    assert out["id"].tolist() == [2, 3, 4, 5] and out["amount"].sum() == 140.25
    tbl = client.query_arrow(f"SELECT name, amount FROM {table_name} WHERE name IN {{names:Array(String)}} ORDER BY name",
                             parameters={"names": ["bob", "erin"]})
    assert tbl.column("name").to_pylist() == ["bob", "erin"]
    assert tbl.column("amount").to_pylist() == [20.25, 50.0]
    # server-side binding with the %(name)s style too
    assert client.query(f"SELECT name FROM {table_name} WHERE id = %(i)s", parameters={"i": 4}).result_rows == [("dave",)]


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_insert_compressed_by_the_client(server, table_name, compress):
    c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.admin[0],
                                      password=server.admin[1], compress=compress)
    c.command(f"CREATE TABLE {table_name} (id UInt64, s String) ENGINE=MergeTree ORDER BY id")
    n = 200_000
    df = pd.DataFrame({"id": range(n), "s": [f"row{i}" for i in range(n)]})
    assert c.insert_df(table_name, df).written_rows == n
    assert c.query(f"SELECT count(), sum(id) FROM {table_name}").result_rows == [(n, n * (n - 1) // 2)]
    got = c.query_df(f"SELECT id, s FROM {table_name} ORDER BY id")
    assert len(got) == n and got["s"].iloc[-1] == f"row{n - 1}"
    c.close()


def test_temporary_table_in_a_session(server):
    c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.admin[0],
                                      password=server.admin[1], session_id="cc-session-1")
    c.command("CREATE TEMPORARY TABLE scratch (k String, n UInt32)")
    c.insert("scratch", [["a", 1], ["b", 2], ["a", 3]], column_names=["k", "n"])
    assert c.query("SELECT k, sum(n) FROM scratch GROUP BY k ORDER BY k").result_rows == [("a", 4), ("b", 2)]
    other = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.admin[0],
                                          password=server.admin[1])
    with pytest.raises(Exception, match="UNKNOWN_TABLE|60"):
        other.query("SELECT * FROM scratch")
    c.close()
    other.close()


def test_replacing_merge_tree_final_collapses_updates_and_deletes(client, table_name):
    client.command(f"""CREATE TABLE {table_name} (customer_id UInt64, tier String, version UInt64, is_deleted UInt8)
                       ENGINE = ReplacingMergeTree(version, is_deleted) ORDER BY customer_id""")
    client.insert(table_name, [[1, "free", 1, 0], [2, "pro", 1, 0], [3, "free", 1, 0]],
                  column_names=["customer_id", "tier", "version", "is_deleted"])
    client.insert(table_name, [[1, "pro", 2, 0], [3, "free", 2, 1], [2, "stale", 0, 0]],
                  column_names=["customer_id", "tier", "version", "is_deleted"])
    assert client.command(f"SELECT count() FROM {table_name}") == 6
    rows = client.query(f"SELECT customer_id, tier, version FROM {table_name} FINAL ORDER BY customer_id").result_rows
    assert rows == [(1, "pro", 2), (2, "pro", 1)]


def test_bi_user_through_clickhouse_connect(server, table_name, client):
    client.command(f"CREATE TABLE {table_name} (a UInt8) ENGINE=MergeTree ORDER BY a")
    client.insert(table_name, [[7]], column_names=["a"])
    bi = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.bi[0], password=server.bi[1])
    assert bi.command(f"SELECT sum(a) FROM {table_name}") == 7
    with pytest.raises(Exception, match="READONLY"):
        bi.insert(table_name, [[8]], column_names=["a"])
    bi.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_json_each_row_and_csv_insert(server, table_name):
    base = ["curl", "-sS", "--fail-with-body", "-u", f"{server.admin[0]}:{server.admin[1]}"]
    subprocess.run([*base, server.url, "--data-binary",
                    f"CREATE TABLE {table_name} (id UInt32, city String, amount Decimal(10,2)) ENGINE=MergeTree ORDER BY id"],
                   check=True, capture_output=True)
    csv = b"1,Berlin,10.50\n2,Paris,20.00\n3,\"Rome, IT\",30.25\n"
    p = subprocess.run([*base, "--data-binary", "@-", f"{server.url}?query=INSERT%20INTO%20{table_name}%20FORMAT%20CSV"],
                       input=csv, capture_output=True, check=True)
    assert p.stdout == b""
    p = subprocess.run([*base, f"{server.url}?query=SELECT%20*%20FROM%20{table_name}%20ORDER%20BY%20id%20FORMAT%20JSONEachRow"],
                       capture_output=True, check=True)
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert rows == [{"id": 1, "city": "Berlin", "amount": 10.5}, {"id": 2, "city": "Paris", "amount": 20},
                    {"id": 3, "city": "Rome, IT", "amount": 30.25}]
    p = subprocess.run([*base, "-o", "/dev/null", "-w", "%{http_code}", f"{server.url}?query=SELECT%20*%20FROM%20nope"],
                       capture_output=True)
    assert p.stdout == b"404"


def test_command_without_a_result_returns_the_summary(client, table_name):
    from clickhouse_connect.driver.summary import QuerySummary

    assert isinstance(client.command(f"DROP TABLE IF EXISTS {table_name}"), QuerySummary)
    assert isinstance(client.command("SET max_threads = 2"), QuerySummary)
    client.command(f"CREATE TABLE {table_name} (a UInt8) ENGINE = Memory")
    summary = client.command(f"INSERT INTO {table_name} VALUES (1), (2), (3)")
    assert isinstance(summary, QuerySummary) and summary.written_rows == 3
    assert client.command(f"SELECT count() FROM {table_name} WHERE a > 5") == 0

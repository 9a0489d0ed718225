"""SIGTERM shuts down cleanly, restarts keep data, kill -9 keeps every acknowledged INSERT."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

DDL = "CREATE TABLE IF NOT EXISTS events (id UInt64, v String) ENGINE=MergeTree ORDER BY id"


def insert(srv, start, n):
    rows = "".join(f"{i},v{i}\n" for i in range(start, start + n)).encode()
    r = srv.query("INSERT INTO events FORMAT CSV", data=rows)
    assert r.status_code == 200, r.text


def test_sigterm_then_restart_keeps_data(fresh_server):
    srv = fresh_server.start()
    srv.ok(DDL)
    insert(srv, 0, 1000)
    srv.ok("CREATE DATABASE IF NOT EXISTS marts")
    srv.ok("CREATE TABLE marts.m (k String, n UInt64) ENGINE=ReplacingMergeTree ORDER BY k")
    srv.ok("INSERT INTO marts.m VALUES ('a', 1)")
    assert srv.stop(signal.SIGTERM) == 0
    assert "chDB closed cleanly" in srv.log()
    srv.start()
    assert srv.ok("SELECT count(), sum(id) FROM events") == "1000\t499500\n"
    assert srv.ok("SELECT k, n FROM marts.m") == "a\t1\n"
    assert srv.stop() == 0


def test_kill_9_keeps_acknowledged_inserts(fresh_server):
    srv = fresh_server.start()
    srv.ok(DDL)
    for batch in range(20):
        insert(srv, batch * 500, 500)
    srv.stop(signal.SIGKILL)
    srv.start()
    assert srv.ok("SELECT count(), uniqExact(id), max(id) FROM events") == "10000\t10000\t9999\n"
    insert(srv, 10000, 1)  # and the restarted server takes writes
    assert srv.ok("SELECT count() FROM events") == "10001\n"


def test_second_server_on_same_data_dir_refuses_with_one_line(fresh_server):
    srv = fresh_server.start()
    p = subprocess.run([sys.executable, "-m", "clickhouse_server"], cwd=str(srv.log_path.parent),
                       env={**srv.env(), "CLICKHOUSE_PORT": "1"}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "already owns" in lines[0], p.stderr
    assert srv.ok("SELECT 1") == "1\n"

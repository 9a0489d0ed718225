"""Differences from clickhouse-server that docs/clickhouse-server.md lists, as they are: if one of
these changes (a new chDB, say), the test fails and the docs need the same change."""
from __future__ import annotations

import pytest

from .test_errors import assert_error

pytestmark = pytest.mark.integration


def test_no_query_log(server):
    r = server.query("SELECT count() FROM system.query_log")
    assert_error(r, 404, 60, "UNKNOWN_TABLE")
    assert "Unknown table expression identifier 'system.query_log'" in r.text


def test_no_create_statement_for_system_tables(server):
    r = server.query("SHOW CREATE TABLE system.tables")
    assert_error(r, 404, 60, "UNKNOWN_TABLE")
    assert "There is no metadata of table tables in database system" in r.text
    # what the docs suggest instead
    assert server.ok("DESCRIBE TABLE system.tables FORMAT TSV").startswith("database\tString\t")


def test_old_analyzer_cannot_be_enabled(server):
    for r in (server.query("SELECT 1 SETTINGS enable_analyzer = 0"),
              server.query("SELECT 1", params={"enable_analyzer": "0"})):
        assert_error(r, 500, 452, "SETTING_CONSTRAINT_VIOLATION")
        assert "the analyzer is mandatory since v26.9" in r.text


def test_no_progress_headers(server):
    r = server.query("SELECT sleep(0.5)", params={"send_progress_in_http_headers": "1",
                                                  "http_headers_progress_interval_ms": "100"})
    assert r.status_code == 200 and r.text == "0\n"
    assert "X-ClickHouse-Progress" not in r.headers

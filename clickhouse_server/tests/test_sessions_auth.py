"""Sessions (session_id/session_timeout, SESSION_IS_LOCKED) and the read-only BI user."""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.integration


def in_session(server, sql, sid, auth=None, **params):
    return server.query(sql, auth=auth or server.admin, params={"session_id": sid, **params})


def test_set_and_temporary_table_live_only_in_their_session(server):
    assert in_session(server, "SET max_threads = 3", "sA").status_code == 200
    assert in_session(server, "SELECT getSetting('max_threads')", "sA").text == "3\n"
    assert in_session(server, "SELECT getSetting('max_threads')", "sB").text != "3\n"
    assert server.ok("SELECT getSetting('max_threads')") != "3\n"
    assert in_session(server, "CREATE TEMPORARY TABLE tmp_x (v UInt32)", "sA").status_code == 200
    assert in_session(server, "INSERT INTO tmp_x VALUES (1), (2), (39)", "sA").status_code == 200
    assert in_session(server, "SELECT sum(v) FROM tmp_x", "sA").text == "42\n"
    r = in_session(server, "SELECT sum(v) FROM tmp_x", "sB")
    assert r.status_code == 404 and r.headers["X-ClickHouse-Exception-Code"] == "60"
    # the same session id of another user is another session
    r = in_session(server, "SELECT sum(v) FROM tmp_x", "sA", auth=server.bi)
    assert r.status_code == 404


def test_session_expires_after_timeout(server):
    assert in_session(server, "CREATE TEMPORARY TABLE tmp_e (v UInt8)", "sE", session_timeout="1").status_code == 200
    assert in_session(server, "SELECT count() FROM tmp_e", "sE", session_timeout="1").text == "0\n"
    time.sleep(2.5)
    r = in_session(server, "SELECT count() FROM tmp_e", "sE", session_timeout="1")
    assert r.status_code == 404  # a new, empty session
    r = in_session(server, "SELECT 1", "never-created", session_check="1")
    assert r.status_code == 500 and r.headers["X-ClickHouse-Exception-Code"] == "372"
    r = in_session(server, "SELECT 1", "sT", session_timeout="99999")
    assert r.headers["X-ClickHouse-Exception-Code"] == "374"


def test_close_session(server):
    in_session(server, "CREATE TEMPORARY TABLE tmp_c (v UInt8)", "sC")
    assert in_session(server, "SELECT count() FROM tmp_c", "sC", close_session="1").text == "0\n"
    assert in_session(server, "SELECT count() FROM tmp_c", "sC").status_code == 404


def test_concurrent_use_of_a_session_is_locked(server):
    results = {}
    t = threading.Thread(target=lambda: results.setdefault("long", in_session(server, "SELECT sleep(2)", "sL")))
    t.start()
    time.sleep(0.5)
    r = in_session(server, "SELECT 1", "sL")
    t.join()
    assert r.status_code == 500 and r.headers["X-ClickHouse-Exception-Code"] == "373"
    assert "(SESSION_IS_LOCKED)" in r.text
    assert results["long"].status_code == 200
    assert in_session(server, "SELECT 5", "sL").text == "5\n"  # usable again once released


def test_bi_user_reads_but_cannot_write(server, table_name):
    server.ok(f"CREATE TABLE {table_name} (a UInt8) ENGINE=MergeTree ORDER BY a")
    server.ok(f"INSERT INTO {table_name} VALUES (1), (2)")
    assert server.ok(f"SELECT sum(a) FROM {table_name}", auth=server.bi) == "3\n"
    for sql, data in [(f"INSERT INTO {table_name} VALUES (3)", None), (f"INSERT INTO {table_name} FORMAT CSV", b"4\n"),
                      (f"DROP TABLE {table_name}", None), ("CREATE TABLE bi_t (a UInt8) ENGINE=Memory", None)]:
        r = server.query(sql, auth=server.bi, data=data)
        assert r.status_code == 500 and r.headers["X-ClickHouse-Exception-Code"] == "164", (sql, r.text)
        assert "(READONLY)" in r.text and server.bi[0] in r.text
    # readonly=2: harmless settings and temporary tables in a session are fine, lifting readonly is not
    assert in_session(server, "SET max_threads = 2", "bi1", auth=server.bi).status_code == 200
    assert in_session(server, "SELECT getSetting('max_threads')", "bi1", auth=server.bi).text == "2\n"
    assert server.ok("SELECT getSetting('max_threads')", auth=server.bi, params={"max_threads": "1"}) == "1\n"
    assert in_session(server, "CREATE TEMPORARY TABLE bi_tmp (a UInt8)", "bi1", auth=server.bi).status_code == 200
    r = in_session(server, "SET readonly = 0", "bi1", auth=server.bi)
    assert r.headers["X-ClickHouse-Exception-Code"] == "164"
    r = server.query("SELECT 1", auth=server.bi, params={"readonly": "0"})
    assert r.headers["X-ClickHouse-Exception-Code"] == "164"
    assert server.ok(f"SELECT count() FROM {table_name}") == "2\n"


def test_get_requests_are_readonly(server, table_name):
    server.ok(f"CREATE TABLE {table_name} (a UInt8) ENGINE=MergeTree ORDER BY a")
    r = server.query(f"INSERT INTO {table_name} VALUES (1)", method="GET")
    assert r.headers["X-ClickHouse-Exception-Code"] == "164"
    r = server.query(f"INSERT INTO {table_name} VALUES (1)", method="GET", params={"session_id": "g1"})
    assert r.headers["X-ClickHouse-Exception-Code"] == "164"
    assert server.ok(f"SELECT count() FROM {table_name}", method="GET") == "0\n"


def test_database_parameter_applies_to_its_request_only(server):
    """As in clickhouse-server: `database` sets the request's database; only USE changes the session's."""
    server.ok("CREATE DATABASE IF NOT EXISTS sess_db_a")
    server.ok("CREATE DATABASE IF NOT EXISTS sess_db_b")
    sid = "s-database"

    def current(**params):
        r = in_session(server, "SELECT currentDatabase()", sid, **params)
        assert r.status_code == 200, r.text
        return r.text

    assert current(database="sess_db_a") == "sess_db_a\n"
    assert current() == "default\n"
    assert in_session(server, "USE sess_db_b", sid, database="sess_db_a").content == b""
    assert current() == "sess_db_b\n"  # USE sticks, even when sent with another `database`
    assert current(database="sess_db_a") == "sess_db_a\n"
    assert current() == "sess_db_b\n"
    r = in_session(server, "SELECT * FROM no_such_table_x", sid, database="sess_db_a")  # a failed request too
    assert r.status_code == 404
    assert current() == "sess_db_b\n"
    # the session's database dropped by a request naming another one: the session falls back to default
    assert in_session(server, "DROP DATABASE sess_db_b", sid, database="sess_db_a").status_code == 200
    assert current() == "default\n"
    server.ok("DROP DATABASE sess_db_a")


ACCESS_REFUSAL = ("is not supported by this chDB-backed server: its users are fixed at startup (CLICKHOUSE_USER "
                  "read-write, CLICKHOUSE_BI_USER read-only, readonly=2) and it has no roles, grants, row policies, "
                  "quotas or settings profiles; connect as one of those users instead (NOT_IMPLEMENTED)")


@pytest.mark.parametrize("sql,statement", [
    ("CREATE USER IF NOT EXISTS dbt_test_user_1 IDENTIFIED BY 'x'", "CREATE USER"),
    ("ALTER USER admin IDENTIFIED BY 'y'", "ALTER USER"), ("DROP USER IF EXISTS dbt_test_user_1", "DROP USER"),
    ("CREATE ROLE IF NOT EXISTS analyst_role", "CREATE ROLE"), ("SET ROLE analyst_role", "SET ROLE"),
    ("SET DEFAULT ROLE analyst_role TO admin", "SET DEFAULT ROLE"),
    ("GRANT SELECT ON default.* TO dbt_test_user_1", "GRANT"), ("revoke select on *.* from u", "REVOKE"),
    ("CREATE ROW POLICY p ON default.t USING a = 1 TO ALL", "CREATE ROW POLICY"),
    ("/* c */ CREATE QUOTA q FOR INTERVAL 1 hour MAX queries = 1", "CREATE QUOTA"),
    ("CREATE SETTINGS PROFILE sp SETTINGS max_threads = 1", "CREATE SETTINGS PROFILE"),
])
def test_access_management_is_refused_with_what_to_do_instead(server, sql, statement):
    for auth in (server.admin, server.bi):
        r = server.query(sql, auth=auth)
        assert r.status_code == 501 and r.headers["X-ClickHouse-Exception-Code"] == "48", r.text
        assert r.text == f"Code: 48. DB::Exception: {statement} {ACCESS_REFUSAL} (version 26.9.2.1)\n"


def test_set_role_to_no_roles_is_accepted(server):
    """There are no roles, so enabling none, the defaults or all of them changes nothing."""
    for sql in ("SET ROLE NONE", "SET ROLE DEFAULT", "set role all;"):
        r = server.query(sql)
        assert r.status_code == 200 and r.content == b"" and "X-ClickHouse-Format" not in r.headers, (sql, r.text)

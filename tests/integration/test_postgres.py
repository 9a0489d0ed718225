"""PostgreSQL of the local stack: logical WAL, and each component role can do exactly its job."""
from __future__ import annotations

import uuid

import psycopg
import pytest

pytestmark = pytest.mark.integration


def connect(settings, role: str | None = None, **kwargs):
    """As the admin (POSTGRES_USER), or as the component role POSTGRES_<role>_USER."""
    prefix = "postgres" if role is None else f"postgres_{role.lower()}"
    user, password = getattr(settings, f"{prefix}_user"), getattr(settings, f"{prefix}_password")
    return psycopg.connect(settings.postgres_dsn(user, password), autocommit=True, **kwargs)


def test_server_is_ready_for_logical_replication(stack_up):
    with connect(stack_up) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert int(conn.execute("SHOW max_replication_slots").fetchone()[0]) >= 10
        assert int(conn.execute("SHOW max_wal_senders").fetchone()[0]) >= 10
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_cdc_role_creates_and_drops_a_pgoutput_slot(stack_up):
    slot = f"it_slot_{uuid.uuid4().hex[:8]}"
    with connect(stack_up, "CDC") as conn:
        name, _lsn = conn.execute("SELECT * FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                                  (slot,)).fetchone()
        assert name == slot
        assert conn.execute("SELECT plugin, slot_type FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone() == ("pgoutput", "logical")
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone() == (0,)


@pytest.fixture
def probe_tables(stack_up):
    """A table in raw and one in crm, created by the superuser as migrations will."""
    name = f"grant_probe_{uuid.uuid4().hex[:8]}"
    with connect(stack_up) as conn:
        conn.execute(f"CREATE TABLE raw.{name} (id int PRIMARY KEY, v text)")
        conn.execute(f"CREATE TABLE crm.{name} (id int PRIMARY KEY, email text)")
        conn.execute(f"INSERT INTO crm.{name} VALUES (1, 'a@example.com')")
    yield name
    with connect(stack_up) as conn:
        conn.execute(f"DROP TABLE raw.{name}, crm.{name}")


def denied(conn, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_stream_writer_upserts_raw_events_and_nothing_more(stack_up, probe_tables):
    t = probe_tables
    with connect(stack_up, "STREAM") as conn:
        conn.execute(f"INSERT INTO raw.{t} VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = excluded.v")
        conn.execute(f"INSERT INTO raw.{t} VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET v = excluded.v")
        assert conn.execute(f"SELECT id, v FROM raw.{t}").fetchall() == [(1, "b")]
        denied(conn, f"DELETE FROM raw.{t}")
        denied(conn, f"CREATE TABLE raw.{t}_new (id int)")
        denied(conn, f"SELECT * FROM crm.{t}")
        denied(conn, f"DROP TABLE raw.{t}")


def test_bi_reader_reads_and_cannot_write(stack_up, probe_tables):
    t = probe_tables
    with connect(stack_up, "BI") as conn:
        assert conn.execute(f"SELECT id FROM crm.{t}").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(f"INSERT INTO raw.{t} VALUES (2, 'x')")
        conn.execute("SET default_transaction_read_only = off")  # even then, no privilege
        denied(conn, f"INSERT INTO raw.{t} VALUES (2, 'x')")
        denied(conn, f"CREATE TABLE raw.{t}_new (id int)")


def test_cdc_role_reads_for_snapshots_and_cannot_write(stack_up, probe_tables):
    t = probe_tables
    with connect(stack_up, "CDC") as conn:
        assert conn.execute(f"SELECT email FROM crm.{t}").fetchall() == [("a@example.com",)]
        denied(conn, f"UPDATE crm.{t} SET email = 'x'")
        denied(conn, f"CREATE TABLE crm.{t}_new (id int)")
        assert conn.execute("SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (False, True)


def test_component_roles_cannot_log_in_with_a_wrong_password(stack_up):
    dsn = stack_up.postgres_dsn(stack_up.postgres_bi_user, stack_up.postgres_bi_password).replace(
        f"password={stack_up.postgres_bi_password}", "password=wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn)

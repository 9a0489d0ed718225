"""A pipeline run's cutoff (dbt/cutoff.py) against the real ClickHouse: the frozen copy keeps exactly the
rows the mirror held when it was fixed, while the mirror gets inserts, new versions, deletes and merges;
fixing the same run again returns the same copy; a new run sees the new rows; old copies are pruned."""
from __future__ import annotations

import importlib.util
import uuid

import pytest

from platform_common import clients
from platform_common.config import REPO
from tests.support import cdc_mirror

pytestmark = pytest.mark.integration

spec = importlib.util.spec_from_file_location("dbt_cutoff", REPO / "dbt" / "cutoff.py")
cutoff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cutoff)


@pytest.fixture
def mirror(stack_up):
    """A throw-away database shaped like the CDC mirror (same tables, engine, order keys), and a prefix
    of its own for the frozen copies, so pruning never touches the pipeline's."""
    ch = clients.clickhouse(stack_up)
    key = uuid.uuid4().hex[:8]
    source, prefix = f"cdc_it_{key}", f"cdc_itrun_{key}_"
    cdc_mirror.create_mirror(ch, source)
    yield ch, source, prefix
    ch.command(f"DROP DATABASE IF EXISTS {source}")
    for (db,) in ch.query("SELECT name FROM system.databases WHERE startsWith(name, {p:String})",
                          parameters={"p": prefix}).result_rows:
        ch.command(f"DROP DATABASE IF EXISTS {db}")
    ch.command("ALTER TABLE pipeline.run_cutoffs DELETE WHERE startsWith(snapshot_database, {p:String})",
               parameters={"p": prefix})


def _customers(ch, db: str, rows: list[tuple[str, str, int, int]]) -> None:
    """(customer_id, email, _version, _is_deleted) rows into <db>.crm_customers; other columns default."""
    ch.insert(f"{db}.crm_customers", [list(r) for r in rows],
              column_names=["customer_id", "email", "_version", "_is_deleted"])


def _state(ch, db: str) -> list[tuple]:
    return ch.query(f"SELECT customer_id, email FROM {db}.crm_customers FINAL WHERE _is_deleted = 0 "
                    "ORDER BY customer_id").result_rows


def test_a_frozen_copy_keeps_the_mirror_as_it_was(mirror):
    ch, source, prefix = mirror
    _customers(ch, source, [("a", "a@1", 1, 0), ("b", "b@1", 1, 0), ("c", "c@1", 1, 0)])
    db = cutoff.fix(ch, "it-run-1", source=source, prefix=prefix)
    assert db == cutoff.database_for("it-run-1", prefix)
    assert _state(ch, db) == [("a", "a@1"), ("b", "b@1"), ("c", "c@1")]

    # the mirror moves on: an update, a delete, a new row, and a merge that drops the old versions
    _customers(ch, source, [("a", "a@2", 2, 0), ("b", "", 2, 1), ("d", "d@1", 1, 0)])
    ch.command(f"OPTIMIZE TABLE {source}.crm_customers FINAL")
    assert _state(ch, source) == [("a", "a@2"), ("c", "c@1"), ("d", "d@1")]
    assert _state(ch, db) == [("a", "a@1"), ("b", "b@1"), ("c", "c@1")]

    # the same run again (a retried task) gets the same copy, unchanged; its cutoff is recorded once
    assert cutoff.fix(ch, "it-run-1", source=source, prefix=prefix) == db
    assert _state(ch, db) == [("a", "a@1"), ("b", "b@1"), ("c", "c@1")]
    recorded = ch.query("SELECT source_table, row_count FROM pipeline.run_cutoffs WHERE run_id = 'it-run-1' "
                        "ORDER BY source_table").result_rows
    # the history (filled by the mirror's materialized view) is frozen with it: the 3 versions of then
    assert recorded == [("crm_customers", 3), ("crm_customers_history", 3), ("raw_purchase_events", 0),
                        ("raw_web_events", 0)]

    # the next run sees what arrived since
    db2 = cutoff.fix(ch, "it-run-2", source=source, prefix=prefix)
    assert db2 != db and _state(ch, db2) == [("a", "a@2"), ("c", "c@1"), ("d", "d@1")]


def test_only_the_newest_copies_are_kept(mirror):
    ch, source, prefix = mirror
    _customers(ch, source, [("a", "a@1", 1, 0)])
    dbs = [cutoff.fix(ch, f"it-prune-{i}", source=source, prefix=prefix) for i in range(cutoff.KEEP + 2)]
    left = {name for (name,) in ch.query("SELECT name FROM system.databases WHERE startsWith(name, {p:String})",
                                         parameters={"p": prefix}).result_rows}
    assert left == set(dbs[-cutoff.KEEP:])

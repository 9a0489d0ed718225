"""A pipeline run's cutoff: a frozen copy of the CDC mirror that every dbt process of the run reads.

    python dbt/cutoff.py fix <run id>     # freeze the mirror for this run; prints the database (last line)
    python dbt/cutoff.py show <run id>    # the recorded cutoff of a run

Why: CDC keeps writing the mirror while a run builds, and a run takes several dbt processes (one
per Airflow task, retries, a later `dbt test`). If each read the live mirror, a mart built a minute
after its parents would count rows its parents never saw, and the run's reconciliation tests
would fail whenever events are arriving. So a run first freezes the mirror, once: for each source
table, `ALTER TABLE ... ATTACH PARTITION tuple() FROM cdc.<table>` hard-links the table's current
parts into `cdc_run_<hash of the run id>`. Nothing is copied, and later inserts and merges of the
mirror do not change the copy. dbt reads it through `--vars {cdc_database: ...}`; rows synced
after the cutoff are the next run's work (the incremental models find them by `_synced_at`).

Each run's cutoff (per table: high watermark and row count) is recorded in
`pipeline.run_cutoffs`, keyed by the run id. Fixing the cutoff of a run again (a retried or
cleared task) returns the same frozen copy. The newest KEEP copies stay, so the last runs can be
rebuilt and compared at their own cutoff; older ones are dropped (a copy keeps the mirror's parts
it links on disk until it is dropped).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SOURCE_DATABASE = "cdc"
# the mirror, and every version of the customers (the churn features read attributes as of past dates)
SOURCE_TABLES = ("crm_customers", "raw_web_events", "raw_purchase_events", "crm_customers_history")
PREFIX = "cdc_run_"
KEEP = 3


def database_for(run_id: str, prefix: str = PREFIX) -> str:
    """The frozen copy's database: a stable, valid identifier for any run id."""
    return prefix + hashlib.sha256(run_id.encode()).hexdigest()[:16]


def _recorded(client, run_id: str) -> dict[str, tuple]:
    rows = client.query("select source_table, snapshot_database, high_watermark, row_count "
                        "from pipeline.run_cutoffs where run_id = {run:String}",
                        parameters={"run": run_id}).result_rows
    return {table: (db, hwm, n) for table, db, hwm, n in rows}


def _databases(client, prefix: str) -> set[str]:
    return {name for (name,) in client.query(
        "select name from system.databases where startsWith(name, {p:String})", parameters={"p": prefix}).result_rows}


def fix(client, run_id: str, source: str = SOURCE_DATABASE, prefix: str = PREFIX) -> str:
    """Freeze `source` (the mirror) for `run_id`, or find its frozen copy; returns the copy's database.
    Tests pass their own source and prefix (copies of one prefix are pruned together)."""
    db = database_for(run_id, prefix)
    recorded = _recorded(client, run_id)
    if set(recorded) == set(SOURCE_TABLES) and db in _databases(client, prefix):
        return db
    # a half-made copy (a crash between the tables) is made again, whole
    client.command(f"drop database if exists {db}")
    client.command(f"create database {db}")
    rows = []
    for table in SOURCE_TABLES:
        client.command(f"create table {db}.{table} as {source}.{table}")
        client.command(f"alter table {db}.{table} attach partition tuple() from {source}.{table}")
        hwm, n = client.query(f"select max(_synced_at), count() from {db}.{table}").result_rows[0]
        rows.append([run_id, table, db, hwm, n])
    client.command("alter table pipeline.run_cutoffs delete where run_id = {run:String}",
                   parameters={"run": run_id})
    client.insert("pipeline.run_cutoffs", rows,
                  column_names=["run_id", "source_table", "snapshot_database", "high_watermark", "row_count"])
    _drop_old(client, prefix, keep=db)
    return db


def _drop_old(client, prefix: str, keep: str) -> None:
    """Drop every frozen copy of `prefix` but the newest KEEP (by when their cutoff was fixed)."""
    newest = [db for (db,) in client.query(
        "select snapshot_database from pipeline.run_cutoffs where startsWith(snapshot_database, {p:String}) "
        "group by snapshot_database order by max(fixed_at) desc limit {n:UInt32}",
        parameters={"p": prefix, "n": KEEP}).result_rows]
    for db in sorted(_databases(client, prefix) - set(newest) - {keep}):
        client.command(f"drop database if exists {db}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dbt/cutoff.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["fix", "show"])
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    from platform_common import clients, config
    client = clients.clickhouse(config.load())
    if args.action == "fix":
        db = fix(client, args.run_id)
        for table, (_, hwm, n) in sorted(_recorded(client, args.run_id).items()):
            print(f"{table}: {n} rows, synced up to {hwm}")
        print(db)
        return 0
    recorded = _recorded(client, args.run_id)
    if not recorded:
        print(f"error: no cutoff recorded for run {args.run_id!r}", file=sys.stderr)
        return 1
    for table, (db, hwm, n) in sorted(recorded.items()):
        print(f"{db}.{table}: {n} rows, synced up to {hwm}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Iceberg on MinIO with the shared PostgreSQL catalog: ClickHouse export, snapshots, time travel,
and pyiceberg and Spark reading the same table."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from platform_common.config import REPO
from spark_ml import export, features, lake

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mart(isolated):
    """A ClickHouse table with the contract's columns, standing in for the dbt mart."""
    ch = lake.clickhouse()
    table = f"{isolated['clickhouse_db']}.customer_features"
    ch.command(features.clickhouse_ddl(table))
    return table


def _fill(table: str, data: pa.Table) -> None:
    ch = lake.clickhouse()
    ch.command(f"TRUNCATE TABLE {table}")
    ch.insert_arrow(table, data)


def test_export_round_trip_snapshots_and_time_travel(mart, spark):
    day1, day2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    first, _ = features.synthetic_arrow(3_000, seed=11, snapshot_date=day1)
    _fill(mart, first)
    r1 = export.export(source=mart)
    assert r1["rows"] == 3_000 and r1["snapshot_dates"] == [day1.isoformat()]

    table = lake.catalog().load_table(lake.FEATURES_TABLE)
    assert [f.name for f in table.schema().fields] == list(features.COLUMN_NAMES)
    got = table.scan().to_arrow()
    assert got.schema.remove_metadata() == features.arrow_schema()
    key = [("customer_id", "ascending")]
    assert got.sort_by(key).equals(first.sort_by(key))  # values survive ClickHouse → Arrow → Parquet

    # second export: a new day (append) — then the same day again with other data (replaces it)
    second, _ = features.synthetic_arrow(2_000, seed=12, snapshot_date=day2)
    _fill(mart, second)
    r2 = export.export(source=mart)
    second_b, _ = features.synthetic_arrow(1_500, seed=13, snapshot_date=day2)
    _fill(mart, second_b)
    r3 = export.export(source=mart)
    table.refresh()
    snaps = table.snapshots()
    assert [s.snapshot_id for s in snaps] == [r1["snapshot_id"], r2["snapshot_id"], r3["snapshot_id"]]  # one per export
    assert [s.summary["export-rows"] for s in snaps] == ["3000", "2000", "1500"]
    now = table.scan().to_arrow()
    counts = {d.isoformat(): n for d, n in zip(*(a.to_pylist() for a in pc.value_counts(now.column("snapshot_date")).flatten()))}
    assert counts == {day1.isoformat(): 3_000, day2.isoformat(): 1_500}

    # time travel to the first export, in pyiceberg and in Spark (same catalog, same files)
    assert table.scan(snapshot_id=r1["snapshot_id"]).to_arrow().num_rows == 3_000
    name = f"{lake.CATALOG}.{lake.FEATURES_TABLE}"
    assert spark.sql(f"SELECT count(*) FROM {name} VERSION AS OF {r1['snapshot_id']}").first()[0] == 3_000
    row = spark.sql(f"SELECT count(*) AS n, count(DISTINCT customer_id) AS ids, round(sum(monetary), 2) AS m "
                    f"FROM {name} WHERE snapshot_date = DATE'{day2}'").first()
    assert (row["n"], row["ids"]) == (1_500, 1_500)
    assert row["m"] == pytest.approx(round(pc.sum(second_b.column("monetary")).as_py(), 2))
    spark_snaps = [r[0] for r in spark.sql(f"SELECT snapshot_id FROM {name}.snapshots ORDER BY committed_at").collect()]
    assert spark_snaps == [s.snapshot_id for s in snaps]


def test_export_refuses_a_mart_that_breaks_the_contract(isolated):
    ch = lake.clickhouse()
    bad = f"{isolated['clickhouse_db']}.bad_features"
    ch.command(f"CREATE TABLE {bad} (customer_id String, snapshot_date Date) ENGINE = MergeTree ORDER BY customer_id")
    with pytest.raises(features.ContractError, match="lacks column"):
        export.export(source=bad)
    with pytest.raises(export.ExportError, match="does not exist"):
        export.export(source=f"{isolated['clickhouse_db']}.missing")


@pytest.mark.parametrize("command, table, step", [
    ("segment", "marts.customer_features", "`python -m spark_ml export` (or `make batch`)"),
    ("load", "ml.customer_segments", "`python -m spark_ml segment`"),
])
def test_a_step_before_its_input_exists_fails_with_one_line(services, command, table, step):
    """On a fresh lake (a new scope: nothing exported yet) segment and load say what to run first."""
    scope = f"test_{uuid.uuid4().hex[:8]}_empty"
    try:
        result = subprocess.run([sys.executable, "-m", "spark_ml", command, "--scope", scope], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run([sys.executable, "-m", "spark_ml", "drop-scope", "--scope", scope], cwd=REPO, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Iceberg table lakehouse.{scope}_{table} does not exist yet; run {step} first")


def test_the_catalog_has_the_v1_layout_and_spark_can_ask_for_a_missing_table(services, spark):
    """What failed in CI: Spark's JdbcCatalog opened an empty database first and created the catalog tables
    in layout V0, where Spark cannot even ask whether a table exists ("initialized without view
    support"). With the layout pinned to V1 (spark_ml/lake.py) either engine creates, or migrates to, V1."""
    import psycopg2

    assert spark.catalog.tableExists(f"{lake.CATALOG}.marts.no_such_table") is False
    with psycopg2.connect(services.postgres_dsn(services.postgres_iceberg_user,
                                                services.postgres_iceberg_password)) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'iceberg' "
                        "AND table_name = 'iceberg_tables'")
            assert "iceberg_type" in {r[0] for r in cur.fetchall()}

"""The stack's ClickHouse endpoint, used by real clients exactly as the platform uses it:
migrations applied, dbt-clickhouse (driver: http) building a project twice, SQLAlchemy
`clickhousedb://` as Superset uses it, and curl."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid

import pytest
import sqlalchemy

from platform_common import clients
from platform_common.config import REPO, TOOLS
from stack import clickhouse, migrations

pytestmark = pytest.mark.integration
DBT = TOOLS / "venvs" / "dbt" / "bin" / "dbt"
PROJECT = REPO / "tests" / "integration" / "dbt_project"


def test_ping_answers_ok_with_curl(stack_up):
    out = subprocess.run(["curl", "-s", f"http://{stack_up.clickhouse_host}:{stack_up.clickhouse_port}/ping"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == "Ok.\n"


def test_migrations_created_the_platform_databases(stack_up):
    client = clients.clickhouse(stack_up)
    databases = {row[0] for row in client.query("SELECT name FROM system.databases").result_rows}
    assert {"cdc", "analytics", "ml"} <= databases
    applied = client.query("SELECT max(version_id) FROM goose_db_version WHERE is_applied").result_rows[0][0]
    assert applied == max(int(p.name.split("_")[0]) for p in migrations.CLICKHOUSE_DIR.glob("*.sql"))
    # a second run is a no-op
    clickhouse.service(stack_up).provision()
    assert client.query("SELECT count() FROM goose_db_version").result_rows[0][0] == applied + 1


def test_bi_user_reads_but_cannot_write(stack_up):
    bi = clients.clickhouse(stack_up, stack_up.clickhouse_bi_user, stack_up.clickhouse_bi_password)
    assert bi.query("SELECT 1 + 1").result_rows == [(2,)]
    with pytest.raises(Exception, match="READONLY|readonly"):
        bi.command("CREATE DATABASE should_not_exist")


@pytest.fixture
def dbt_schema(stack_up):
    schema = f"dbt_it_{uuid.uuid4().hex[:8]}"
    client = clients.clickhouse(stack_up)
    client.command(f"CREATE DATABASE {schema}_src")
    client.command(f"CREATE TABLE {schema}_src.orders (order_id UInt32, customer_id UInt32, amount Float64, "
                   "status String, updated_at DateTime) ENGINE = MergeTree ORDER BY order_id")
    yield schema
    for db in (schema, f"{schema}_src"):
        client.command(f"DROP DATABASE IF EXISTS {db}")


def dbt_build(settings, schema: str, tmp_path) -> None:
    env = {**os.environ, "CLICKHOUSE_HOST": settings.clickhouse_host, "CLICKHOUSE_PORT": str(settings.clickhouse_port),
           "CLICKHOUSE_USER": settings.clickhouse_user, "CLICKHOUSE_PASSWORD": settings.clickhouse_password,
           "DBT_IT_SCHEMA": schema}
    result = subprocess.run([str(DBT), "build", "--profiles-dir", str(PROJECT), "--project-dir", str(PROJECT),
                             "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "PASS=16 WARN=0 ERROR=0 SKIP=0" in result.stdout


def test_dbt_build_twice_with_incremental_models(stack_up, dbt_schema, tmp_path):
    assert DBT.exists(), "dbt environment missing: run `make setup`"
    client = clients.clickhouse(stack_up)
    t0 = dt.datetime(2026, 1, 1)
    cols = ["order_id", "customer_id", "amount", "status", "updated_at"]
    client.insert(f"{dbt_schema}_src.orders",
                  [[i, i % 10, float(i), "completed", t0 + dt.timedelta(minutes=i)] for i in range(100)],
                  column_names=cols)
    dbt_build(stack_up, dbt_schema, tmp_path)
    q = lambda sql: client.query(sql.format(s=dbt_schema)).result_rows  # noqa: E731
    assert q("SELECT count() FROM {s}.stg_orders") == [(100,)]
    assert q("SELECT count(), sum(revenue) FROM {s}.customer_totals") == [(10, 4950.0)]
    assert q("SELECT count() FROM {s}.orders_appended") == [(100,)]
    assert q("SELECT orders, revenue FROM {s}.customer_latest WHERE customer_id = 3") == [(10, 480.0)]

    # 20 new orders, all for customers 3 and 4: the second build is incremental
    client.insert(f"{dbt_schema}_src.orders",
                  [[100 + i, 3 + i % 2, 1000.0, "completed", t0 + dt.timedelta(days=1, minutes=i)] for i in range(20)],
                  column_names=cols)
    dbt_build(stack_up, dbt_schema, tmp_path)
    assert q("SELECT count() FROM {s}.orders_appended") == [(120,)]
    assert q("SELECT count(DISTINCT order_id) FROM {s}.orders_appended") == [(120,)]
    # delete+insert recomputed customers 3 and 4 over their full history, and left the others alone
    assert q("SELECT count() FROM {s}.customer_latest") == [(10,)]
    assert q("SELECT orders, revenue FROM {s}.customer_latest WHERE customer_id = 3") == [(20, 10480.0)]
    assert q("SELECT orders, revenue FROM {s}.customer_latest WHERE customer_id = 5") == [(10, 500.0)]
    assert q("SELECT sum(revenue) FROM {s}.customer_latest") == q("SELECT sum(revenue) FROM {s}.customer_totals")


def test_sqlalchemy_clickhousedb_dialect_as_superset_uses_it(stack_up):
    url = (f"clickhousedb://{stack_up.clickhouse_bi_user}:{stack_up.clickhouse_bi_password}"
           f"@{stack_up.clickhouse_host}:{stack_up.clickhouse_port}/default")
    admin = clients.clickhouse(stack_up)
    table = f"sa_probe_{uuid.uuid4().hex[:8]}"
    admin.command(f"CREATE TABLE analytics.{table} (id UInt32, country LowCardinality(String), "
                  "revenue Decimal(12, 2), seen DateTime) ENGINE = MergeTree ORDER BY id")
    admin.insert(f"analytics.{table}", [[1, "DE", 10.5, dt.datetime(2026, 1, 1)],
                                        [2, "FR", 4.25, dt.datetime(2026, 1, 2)]],
                 column_names=["id", "country", "revenue", "seen"])
    engine = sqlalchemy.create_engine(url)
    try:
        inspector = sqlalchemy.inspect(engine)
        assert {"analytics", "cdc", "ml"} <= set(inspector.get_schema_names())
        assert table in inspector.get_table_names(schema="analytics")
        columns = {c["name"]: str(c["type"]) for c in inspector.get_columns(table, schema="analytics")}
        assert list(columns) == ["id", "country", "revenue", "seen"]
        assert "UInt32" in columns["id"] and "Decimal" in columns["revenue"]
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                f"SELECT country, sum(revenue) AS r FROM analytics.{table} GROUP BY country ORDER BY country")).all()
        assert [(c, float(r)) for c, r in rows] == [("DE", 10.5), ("FR", 4.25)]
    finally:
        engine.dispose()
        admin.command(f"DROP TABLE analytics.{table}")

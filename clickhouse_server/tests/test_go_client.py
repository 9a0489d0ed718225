"""The Go client over HTTP: goose v3 (clickhouse-go v2 inside) and clickhouse-go itself.

clickhouse-go sends `client_protocol_version=54460` and reads Native with BlockInfo and the
has_custom_serialization byte, so these tests are the end-to-end proof of native.py. The
clickhouse-go client (goclient/main.go) is built with exactly the module versions compiled into
`make setup`'s goose binary, which are in the Go module cache once goose has been built.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import clickhouse_connect
import pytest

from .conftest import ADMIN, REPO

pytestmark = pytest.mark.integration

GOOSE = REPO / ".tools" / "bin" / "goose"
GOCLIENT_SRC = Path(__file__).with_name("goclient") / "main.go"


def _goose_binary() -> Path:
    if not os.access(GOOSE, os.X_OK):
        pytest.fail(f"goose is not installed at {GOOSE.relative_to(REPO)}; run `make setup` first")
    return GOOSE


@pytest.fixture(scope="module")
def goclient(tmp_path_factory) -> Path:
    """goclient/main.go built against the clickhouse-go version that goose was built with."""
    goose = _goose_binary()
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is not on PATH; run `make setup` (it checks for Go 1.24+)")
    info = subprocess.run([go, "version", "-m", str(goose)], capture_output=True, text=True, timeout=60)
    deps = [line.split()[1:3] for line in info.stdout.splitlines() if line.split()[:1] == ["dep"]]
    assert any(mod == "github.com/ClickHouse/clickhouse-go/v2" for mod, _ in deps), info.stdout + info.stderr
    work = tmp_path_factory.mktemp("goclient")
    shutil.copy(GOCLIENT_SRC, work / "main.go")
    requires = "\n".join(f"\t{mod} {version}" for mod, version in deps)
    (work / "go.mod").write_text(f"module goclient\n\ngo 1.24\n\nrequire (\n{requires}\n)\n")
    # The modules are in the module cache since goose was built from them (and were checked then).
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOSUMDB": "off", "CGO_ENABLED": "0"}
    build = subprocess.run([go, "build", "-o", str(work / "goclient"), "."], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"building the clickhouse-go test client failed:\n{build.stderr}"
    return work / "goclient"


def go(goclient: Path, server, mode: str, arg: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(goclient), f"127.0.0.1:{server.port}", *server.admin, mode, arg],
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"clickhouse-go failed: {result.stderr}\n{server.log()[-3000:]}"
    return result


def go_query(goclient: Path, server, sql: str) -> dict:
    return json.loads(go(goclient, server, "query", sql).stdout)


# ---- goose ----------------------------------------------------------------------------------

MIGRATIONS = {
    "00001_create_events.sql": """\
        -- +goose Up
        CREATE DATABASE IF NOT EXISTS goose_app;
        CREATE TABLE goose_app.events (
            id UInt64,
            name String,
            ts DateTime('UTC'),
            amount Decimal(10, 2),
            tags Array(LowCardinality(String))
        ) ENGINE = MergeTree ORDER BY id;

        -- +goose Down
        DROP TABLE IF EXISTS goose_app.events;
        DROP DATABASE IF EXISTS goose_app;
        """,
    "00002_seed_events.sql": """\
        -- +goose Up
        INSERT INTO goose_app.events VALUES
            (1, 'signup', '2024-01-01 10:00:00', 9.99, ['web', 'eu']),
            (2, 'purchase', '2024-01-02 11:30:00', 120.50, ['app']),
            (3, 'refund', '2024-01-03 12:45:00', -20.00, []);

        -- +goose Down
        ALTER TABLE goose_app.events DELETE WHERE id IN (1, 2, 3);
        """,
}


def test_goose_migrations_over_http(fresh_server, tmp_path):
    goose = _goose_binary()
    server = fresh_server.start()
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name, text in MIGRATIONS.items():
        (migrations / name).write_text(textwrap.dedent(text))
    dsn = f"http://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{server.port}/default"

    def run(command: str) -> str:
        # cwd is the temp dir so goose reads no .env of the repository
        result = subprocess.run([str(goose), "-dir", str(migrations), "clickhouse", dsn, command],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300)
        out = result.stdout + result.stderr
        assert result.returncode == 0, f"goose {command} failed:\n{out}\n{server.log()[-3000:]}"
        return out

    up = run("up")
    assert "OK   00001_create_events.sql" in up and "OK   00002_seed_events.sql" in up, up
    assert "successfully migrated database to version: 2" in up, up

    status = run("status")
    for name in MIGRATIONS:
        line = next((ln for ln in status.splitlines() if ln.endswith(f"-- {name}")), None)
        assert line is not None, status
        assert "Pending" not in line, status
    assert "Pending" not in status, status

    again = run("up")
    assert "no migrations to run. current version: 2" in again, again
    assert "OK " not in again, again

    c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=ADMIN[0], password=ADMIN[1])
    try:
        rows = c.query("SELECT id, name, ts, amount, tags FROM goose_app.events ORDER BY id").result_rows
        utc = dt.UTC
        assert [(r[0], r[1], r[2].replace(tzinfo=utc) if r[2].tzinfo is None else r[2], r[3], r[4]) for r in rows] == [
            (1, "signup", dt.datetime(2024, 1, 1, 10, 0, tzinfo=utc), decimal.Decimal("9.99"), ["web", "eu"]),
            (2, "purchase", dt.datetime(2024, 1, 2, 11, 30, tzinfo=utc), decimal.Decimal("120.50"), ["app"]),
            (3, "refund", dt.datetime(2024, 1, 3, 12, 45, tzinfo=utc), decimal.Decimal("-20.00"), []),
        ]
        versions = c.query("SELECT version_id, is_applied FROM goose_db_version ORDER BY version_id").result_rows
        assert versions == [(0, 1), (1, 1), (2, 1)]
        # every `up` wrote its versions once: the second run added nothing
        assert c.command("SELECT count() FROM goose_db_version") == 3
    finally:
        c.close()


# ---- clickhouse-go -------------------------------------------------------------------------

TYPES = [
    # (expression, type clickhouse-go reports, value as clickhouse-go decodes it, JSON-encoded)
    ("toUInt16(65535)", "UInt16", 65535),
    ("toInt64(-9007199254740993)", "Int64", -9007199254740993),
    ("toUInt64(18446744073709551615)", "UInt64", 18446744073709551615),
    ("toInt128('-170141183460469231731687303715884105728')", "Int128", -170141183460469231731687303715884105728),
    ("toUInt256('12345678901234567890123456789')", "UInt256", 12345678901234567890123456789),
    ("toFloat32(1.5)", "Float32", 1.5),
    ("toFloat64(-2.25)", "Float64", -2.25),
    ("'héllo'", "String", "héllo"),
    ("toFixedString('ab', 3)", "FixedString(3)", "ab\u0000"),
    ("toDate('2024-02-29')", "Date", "2024-02-29T00:00:00Z"),
    ("toDate32('1900-01-01')", "Date32", "1900-01-01T00:00:00Z"),
    ("toDateTime('2024-01-02 03:04:05', 'Asia/Tokyo')", "DateTime('Asia/Tokyo')", "2024-01-02T03:04:05+09:00"),
    ("toDateTime64('2024-01-02 03:04:05.678', 3, 'America/New_York')", "DateTime64(3, 'America/New_York')",
     "2024-01-02T03:04:05.678-05:00"),
    ("toUUID('123e4567-e89b-12d3-a456-426614174000')", "UUID", "123e4567-e89b-12d3-a456-426614174000"),
    ("true", "Bool", True),
    ("CAST(NULL AS Nullable(Int32))", "Nullable(Int32)", None),
    ("CAST(7 AS Nullable(Int32))", "Nullable(Int32)", 7),
    ("[[1, 2], [], [3]]::Array(Array(UInt32))", "Array(Array(UInt32))", [[1, 2], [], [3]]),
    ("['a', NULL]::Array(Nullable(String))", "Array(Nullable(String))", ["a", None]),
    ("toLowCardinality('lc')", "LowCardinality(String)", "lc"),
    ("CAST(NULL AS LowCardinality(Nullable(String)))", "LowCardinality(Nullable(String))", None),
    ("[toLowCardinality('x'), toLowCardinality('y')]", "Array(LowCardinality(String))", ["x", "y"]),
    ("map('a', 1, 'b', 2)::Map(String, UInt64)", "Map(String, UInt64)", {"a": 1, "b": 2}),
    ("toDecimal32(3.14, 2)", "Decimal(9, 2)", "3.14"),
    ("toDecimal128('-12345678901234567890.123', 3)", "Decimal(38, 3)", "-12345678901234567890.123"),
    ("CAST('b' AS Enum8('a' = 1, 'b' = 2))", "Enum8('a' = 1, 'b' = 2)", "b"),
    ("CAST('z' AS Enum16('y' = -300, 'z' = 300))", "Enum16('y' = -300, 'z' = 300)", "z"),
    ("tuple(1::UInt8, 'x')", "Tuple(UInt8, String)", [1, "x"]),
    ("CAST((1, 'x') AS Tuple(n UInt8, s String))", "Tuple(n UInt8, s String)", {"n": 1, "s": "x"}),
    ("toIPv4('10.1.2.3')", "IPv4", "10.1.2.3"),
    ("toIPv6('2001:db8::1')", "IPv6", "2001:db8::1"),
]


def test_go_client_decodes_every_supported_type(goclient, server):
    sql = "SELECT " + ", ".join(f"{expr} AS c{i}" for i, (expr, _, _) in enumerate(TYPES))
    result = go_query(goclient, server, sql)
    assert [c["type"] for c in result["columns"]] == [t for _, t, _ in TYPES]
    assert len(result["rows"]) == 1
    for (expr, _, expected), got in zip(TYPES, result["rows"][0]):
        assert got == expected, expr


def test_go_client_reads_many_blocks_and_empty_results(goclient, server):
    result = go_query(goclient, server, "SELECT number, toString(number) AS s, [number] AS a FROM numbers(50000) "
                                        "SETTINGS max_block_size = 1000")
    rows = result["rows"]
    assert len(rows) == 50000
    assert rows[0] == [0, "0", [0]] and rows[-1] == [49999, "49999", [49999]]
    assert sum(r[0] for r in rows) == sum(range(50000))
    assert go_query(goclient, server, "SELECT 1 AS x WHERE 0")["rows"] == []


def test_go_client_batch_insert(goclient, server, client, table_name):
    client.command(f"""CREATE TABLE {table_name} (
        id UInt64, i8 Int8, u32 UInt32, i128 Int128, f32 Float32, f64 Float64, s String,
        lc LowCardinality(String), fs FixedString(3), d Date, d32 Date32, dt DateTime('UTC'),
        dt64 DateTime64(3, 'Europe/Berlin'), u UUID, b Bool, n Nullable(Int32), a Array(String),
        m Map(String, UInt64), dec Decimal(10, 2), t Tuple(UInt8, String), e Enum8('a' = 1, 'b' = 2)
    ) ENGINE = MergeTree ORDER BY id""")
    out = json.loads(go(goclient, server, "insert", table_name).stdout)
    assert out == {"inserted": 3}
    rows = client.query(f"SELECT * FROM {table_name} ORDER BY id").result_rows
    assert len(rows) == 3
    r = rows[1]
    assert r[:9] == (1, -1, 4000000001, -4, 1.5, 0.25, "name-1", "k1", b"abc" if isinstance(r[8], bytes) else "abc")
    assert r[9] == dt.date(2024, 1, 3) and r[10] == dt.date(1950, 1, 3)
    assert r[11].replace(tzinfo=None) == dt.datetime(2024, 3, 4, 5, 6, 8)
    berlin = r[12]
    assert (berlin.hour, berlin.minute, berlin.second, berlin.microsecond) == (5, 6, 7, 1000)
    assert r[13] == uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert r[14] is False and r[15] is None and rows[2][15] == -2
    assert r[16] == ["x", "1"] and r[17] == {"k": 1} and r[18] == decimal.Decimal("1.25")
    assert r[19] == (1, "t1") and r[20] == "b"
    # and back through clickhouse-go
    back = go_query(goclient, server, f"SELECT id, dt64, lc, n FROM {table_name} ORDER BY id")
    assert back["rows"] == [[0, "2024-03-04T05:06:07+01:00", "k0", 0],
                            [1, "2024-03-04T05:06:07.001+01:00", "k1", None],
                            [2, "2024-03-04T05:06:07.002+01:00", "k0", -2]]


def test_go_client_gets_an_error_for_types_it_cannot_be_sent(goclient, server):
    result = go(goclient, server, "query", "SELECT '{\"a\": 1}'::JSON AS j", check=False)
    assert result.returncode == 1
    assert "code: 48" in result.stderr and "JSON cannot be sent in Native format" in result.stderr, result.stderr
    # the server is fine afterwards
    assert go_query(goclient, server, "SELECT 1 AS one")["rows"] == [[1]]

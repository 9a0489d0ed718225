"""Fixtures for spark_ml's tests (run with the spark venv: `make test-spark`).

Integration tests use the running stack's PostgreSQL (Iceberg catalog), MinIO and ClickHouse; if
they are not up they are started with the same command users run (`python -m stack up ...`, with
the main environment's python). Everything the tests write is isolated: Iceberg namespaces
`test_<uid>_marts` / `test_<uid>_ml`, ClickHouse database `ml_test_<uid>`, MinIO prefix
`tests/<uid>/`; all removed at the end.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import uuid

import pytest

from stack.config import REPO

MIGRATION = REPO / "sql" / "clickhouse" / "migrations" / "00003_ml_segments.sql"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def services():
    from spark_ml import lake

    s = lake.settings()
    needed = {"postgres": (s.postgres_host, s.postgres_port), "minio": (s.minio_host, s.minio_port),
              "clickhouse": (s["CLICKHOUSE_HOST"], s.clickhouse_port)}
    down = [name for name, addr in needed.items() if not _reachable(*addr)]
    started = False
    if down:
        result = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "stack", "up", *down], cwd=REPO,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"stack up {down} failed:\n{result.stdout}\n{result.stderr}"
        started = True
    yield s
    if started:
        subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "stack", "down"], cwd=REPO, timeout=300)


@contextlib.contextmanager
def isolated_lake(minio_bucket: str, tag: str = ""):
    """Point spark_ml at test-only Iceberg namespaces, a ClickHouse database and a MinIO prefix,
    and remove them (and restore the module settings) afterwards."""
    from spark_ml import lake, load

    uid = uuid.uuid4().hex[:8]
    saved = {name: getattr(lake, name) for name in ("FEATURES_TABLE", "SEGMENTS_TABLE", "PROFILES_TABLE", "MODELS_PREFIX")}
    saved_ch = {name: getattr(load, name) for name in ("SEGMENTS", "PROFILES", "RUNS")}
    marts, ml, db = f"test_{uid}{tag}_marts", f"test_{uid}{tag}_ml", f"ml_test_{uid}{tag}"
    lake.FEATURES_TABLE, lake.SEGMENTS_TABLE = f"{marts}.customer_features", f"{ml}.customer_segments"
    lake.PROFILES_TABLE, lake.MODELS_PREFIX = f"{ml}.segment_profiles", f"tests/{uid}/models/segmentation"
    load.SEGMENTS, load.PROFILES, load.RUNS = (f"{db}.customer_segments", f"{db}.segment_profiles",
                                               f"{db}.segmentation_runs")
    ch = lake.clickhouse()
    try:
        ch.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        for stmt in MIGRATION.read_text().split("-- +goose Down")[0].replace("ml.", f"{db}.").split(";"):
            body = "\n".join(line for line in stmt.splitlines() if not line.strip().startswith("--")).strip()
            if body:
                ch.command(body)
        yield {"uid": uid, "clickhouse_db": db}
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {db}")
        cat = lake.catalog()
        for ns in (marts, ml):
            try:
                for ident in cat.list_tables(ns):
                    cat.purge_table(ident)
                cat.drop_namespace(ns)
            except Exception:  # noqa: BLE001 (best-effort cleanup)
                pass
        client = lake.minio()
        for obj in client.list_objects(minio_bucket, prefix=f"tests/{uid}/", recursive=True):
            client.remove_object(minio_bucket, obj.object_name)
        for name, value in saved.items():
            setattr(lake, name, value)
        for name, value in saved_ch.items():
            setattr(load, name, value)


@pytest.fixture(scope="session")
def isolated(services):
    """The session's isolated lake (see isolated_lake)."""
    with isolated_lake(services["MINIO_BUCKET"]) as names:
        yield names


@pytest.fixture(scope="session")
def spark(services):
    from spark_ml import lake

    os.environ.setdefault("SPARK_DRIVER_MEMORY", "2g")
    session = lake.spark_session("spark_ml.tests")
    yield session
    session.stop()


def valid_identifier(name: str) -> bool:
    return bool(re.match(r"^[a-z0-9_]+$", name))

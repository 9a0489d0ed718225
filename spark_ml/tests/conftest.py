"""Fixtures for spark_ml's tests (run with the spark venv: `make test-spark`).

Integration tests use the running stack's PostgreSQL (Iceberg catalog), MinIO and ClickHouse; if
they are not up they are started with the same command users run (`python -m stack up ...`, with
the main environment's python). Everything the tests write is isolated: Iceberg namespaces
`test_<uid>_marts` / `test_<uid>_ml`, ClickHouse database `ml_test_<uid>`, MinIO prefix
`scopes/test_<uid>/` (spark_ml.scope); all removed at the end.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import uuid

import pytest

from platform_common.config import REPO


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
              "clickhouse": (s.clickhouse_host, s.clickhouse_port)}
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
    """Point spark_ml at a test-only scope (spark_ml.scope: Iceberg namespaces, a ClickHouse database
    and a MinIO prefix in the stack's bucket, `minio_bucket`), and remove it (and restore the module
    settings) afterwards."""
    from spark_ml import lake, load, scope

    uid = uuid.uuid4().hex[:8]
    saved = {name: getattr(lake, name) for name in ("FEATURES_TABLE", "SEGMENTS_TABLE", "PROFILES_TABLE", "MODELS_PREFIX")}
    saved_ch = {name: getattr(load, name) for name in ("SEGMENTS", "PROFILES", "RUNS")}
    name = f"test_{uid}{tag}"
    try:
        names = scope.apply(name)
        yield {"uid": uid, **names}
    finally:
        scope.drop(name)
        for attr, value in saved.items():
            setattr(lake, attr, value)
        for attr, value in saved_ch.items():
            setattr(load, attr, value)


@pytest.fixture(scope="session")
def isolated(services):
    """The session's isolated lake (see isolated_lake)."""
    with isolated_lake(services.minio_bucket) as names:
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

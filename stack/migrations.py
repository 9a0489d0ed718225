"""Versioned SQL migrations (sql/<database>/migrations) applied with goose on every `make up`.

goose records applied versions in each database (goose_db_version), so re-running is a
no-op; a failing migration stops `make up` with its file name and the database's error.
"""
from __future__ import annotations

import re
import subprocess

from platform_common.config import BIN, REPO
from platform_common.errors import StackError

POSTGRES_DIR = REPO / "sql" / "postgres" / "migrations"
CLICKHOUSE_DIR = REPO / "sql" / "clickhouse" / "migrations"


def apply(driver: str, directory, dsn: str) -> str:
    """Apply pending migrations; returns goose's summary line."""
    result = subprocess.run([str(BIN / "goose"), "-dir", str(directory), "-allow-missing", driver, dsn, "up"],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise StackError(_error_line(driver, result.stderr + result.stdout))
    return (result.stderr.strip().splitlines() or [""])[-1]


def _error_line(driver: str, output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    failing = next((ln for ln in reversed(lines) if "ERROR" in ln or "error" in ln), lines[-1] if lines else "")
    failing = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", failing)
    failing = re.sub(r'failed to execute SQL query ".*?": ', "", failing, flags=re.S)
    file = re.search(r"(\d+_[\w.-]+\.sql)", failing)
    where = f"{directory_name(driver)}/{file.group(1)}" if file else f"migrations for {driver}"
    return f"migration {where} failed: {failing.strip()}"


def directory_name(driver: str) -> str:
    return str((POSTGRES_DIR if driver == "postgres" else CLICKHOUSE_DIR).relative_to(REPO))

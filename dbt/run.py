"""Run dbt for the platform's project: `python dbt/run.py <dbt args>` (the Makefile's dbt_* targets).

Loads the stack's settings (.env through platform_common.config), exports what dbt/profiles.yml reads
(CLICKHOUSE_HOST/PORT/USER/PASSWORD; DBT_TARGET_SCHEMA defaults to `analytics`) and runs dbt from
its own environment (.tools/venvs/dbt, `make setup`) with this project and profile directory.

    python dbt/run.py build
    python dbt/run.py build --vars '{snapshot_date: "2026-11-01"}'
    python dbt/run.py source freshness
    python dbt/run.py docs generate
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent
REPO = PROJECT.parent
DBT = REPO / ".tools" / "venvs" / "dbt" / "bin" / "dbt"


def environment(settings=None, schema: str | None = None) -> dict[str, str]:
    """os.environ plus the ClickHouse connection from .env and the target schema."""
    if settings is None:
        from platform_common import config
        settings = config.load()
    env = dict(os.environ)
    env["CLICKHOUSE_HOST"] = settings.clickhouse_host
    env["CLICKHOUSE_PORT"] = str(settings.clickhouse_port)
    env["CLICKHOUSE_USER"] = settings.clickhouse_user
    env["CLICKHOUSE_PASSWORD"] = settings.clickhouse_password
    if schema:
        env["DBT_TARGET_SCHEMA"] = schema
    env.setdefault("DBT_TARGET_SCHEMA", "analytics")
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def command(args: list[str]) -> list[str]:
    """The dbt command line: project and profiles from dbt/ unless the caller gave them."""
    cmd = [str(DBT), *args]
    if args and args[0] not in ("--version", "-v", "--help", "-h"):
        if "--project-dir" not in args:
            cmd += ["--project-dir", str(PROJECT)]
        if "--profiles-dir" not in args:
            cmd += ["--profiles-dir", str(PROJECT)]
    return cmd


def main(argv: list[str]) -> int:
    if not DBT.exists():
        print(f"error: dbt is not installed at {DBT}; run `make setup`", file=sys.stderr)
        return 2
    if not argv:
        print(__doc__.strip())
        return 2
    env = environment()
    os.chdir(PROJECT)
    os.execve(str(DBT), command(argv), env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

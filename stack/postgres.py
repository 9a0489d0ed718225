"""PostgreSQL: Debian's postgresql-15 server, one cluster in the data folder, logical WAL.

The server refuses to run as root, so when the stack runs as root it runs the server
as the `postgres` OS user that Debian's package creates.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from platform_common.config import REPO, Settings
from platform_common.errors import PrerequisiteError, StackError
from stack import migrations
from stack.service import Service

PG_MAJOR = 15
OS_USER = "postgres"
ROLES_SQL = REPO / "sql" / "postgres" / "roles.sql"


def bin_dir() -> Path:
    path = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    if not (path / "postgres").exists():
        raise PrerequisiteError(
            f"PostgreSQL {PG_MAJOR} server not found in {path}; install it with "
            f"`sudo apt-get install postgresql-{PG_MAJOR}` (make setup does this when run as root)")
    return path


def _run_as() -> str | None:
    return OS_USER if os.geteuid() == 0 else None


def _as_user(cmd: list[str]) -> list[str]:
    user = _run_as()
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _chown(path: Path) -> None:
    user = _run_as()
    if user:
        entry = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)


def unreachable_folder(path: Path) -> Path | None:
    """The outermost folder of `path` that the OS user PostgreSQL runs as cannot enter, or None. As root the
    server runs as that user, so a checkout under a private folder (mode 0700, e.g. from mktemp -d) is out
    of its reach."""
    user = _run_as()
    if not user:
        return None
    for folder in [*reversed(path.parents), path]:
        if folder.exists() and subprocess.run(_as_user(["test", "-x", str(folder)])).returncode != 0:
            return folder
    return None


def service(settings: Settings) -> Service:
    root = settings.data_dir / "postgres"
    data, run = root / "data", root / "run"

    def prepare() -> None:
        run.mkdir(parents=True, exist_ok=True)
        if (data / "PG_VERSION").exists():
            _chown(run)
            return
        data.mkdir(parents=True, exist_ok=True)
        pwfile = root / "initdb.pw"
        pwfile.write_text(settings["POSTGRES_PASSWORD"])
        _chown(root)
        try:
            result = subprocess.run(
                _as_user([str(bin_dir() / "initdb"), "-D", str(data), "-U", settings["POSTGRES_USER"],
                          f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                          "--encoding=UTF8", "--locale=C.UTF-8"]),
                capture_output=True, text=True)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            blocked = unreachable_folder(root)
            if blocked:
                raise StackError(f"initdb failed: PostgreSQL runs as the OS user {_run_as()}, which cannot enter "
                                 f"{blocked}; make it traversable (chmod o+x {blocked}) or put the checkout elsewhere")
            last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise StackError(f"initdb failed for {data}: {last}")

    def healthy() -> bool:
        try:
            with psycopg.connect(settings.postgres_dsn(dbname="postgres")) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    return Service(
        name="postgres",
        port=settings.postgres_port,
        port_setting="POSTGRES_PORT",
        url=f"postgresql://{settings.postgres_host}:{settings.postgres_port}/{settings['POSTGRES_DB']}",
        command=[
            str(bin_dir() / "postgres"), "-D", str(data),
            "-c", f"listen_addresses={settings.postgres_host}",
            "-c", f"port={settings.postgres_port}",
            "-c", f"unix_socket_directories={run}",
            "-c", "wal_level=logical",
            "-c", "max_replication_slots=16",
            "-c", "max_wal_senders=16",
            # a stuck CDC slot may not fill the disk: past this, the slot is invalidated
            "-c", "max_slot_wal_keep_size=4GB",
            "-c", "shared_buffers=256MB",
            "-c", "max_connections=200",
        ],
        healthy=healthy,
        prepare=prepare,
        provision=lambda: provision(settings),
        user=_run_as(),
        stop_signal="INT",  # "fast" shutdown: abort transactions, checkpoint, exit
        stop_wait_seconds=60,
    )


def provision(settings: Settings) -> None:
    """Create the database, the per-component roles and their grants (sql/postgres/roles.sql)."""
    with psycopg.connect(settings.postgres_dsn(dbname="postgres"), autocommit=True) as conn:
        db = settings["POSTGRES_DB"]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    psql(settings, ROLES_SQL, {
        "db": settings["POSTGRES_DB"],
        "admin_user": settings["POSTGRES_USER"],
        "cdc_user": settings["POSTGRES_CDC_USER"], "cdc_password": settings["POSTGRES_CDC_PASSWORD"],
        "stream_user": settings["POSTGRES_STREAM_USER"], "stream_password": settings["POSTGRES_STREAM_PASSWORD"],
        "bi_user": settings["POSTGRES_BI_USER"], "bi_password": settings["POSTGRES_BI_PASSWORD"],
        "simulator_user": settings["POSTGRES_SIMULATOR_USER"],
        "simulator_password": settings["POSTGRES_SIMULATOR_PASSWORD"],
        "iceberg_user": settings["POSTGRES_ICEBERG_USER"], "iceberg_password": settings["POSTGRES_ICEBERG_PASSWORD"],
        "airflow_user": settings["POSTGRES_AIRFLOW_USER"], "airflow_password": settings["POSTGRES_AIRFLOW_PASSWORD"],
        "airflow_db": settings["AIRFLOW_DB"],
        "superset_user": settings["POSTGRES_SUPERSET_USER"],
        "superset_password": settings["POSTGRES_SUPERSET_PASSWORD"], "superset_db": settings["POSTGRES_SUPERSET_DB"],
        "mlflow_user": settings["POSTGRES_MLFLOW_USER"], "mlflow_password": settings["POSTGRES_MLFLOW_PASSWORD"],
        "mlflow_db": settings["POSTGRES_MLFLOW_DB"],
        "churn_api_user": settings["POSTGRES_CHURN_API_USER"],
        "churn_api_password": settings["POSTGRES_CHURN_API_PASSWORD"],
    })
    migrations.apply("postgres", migrations.POSTGRES_DIR,
                     f"host={settings.postgres_host} port={settings.postgres_port} user={settings['POSTGRES_USER']} "
                     f"password={settings['POSTGRES_PASSWORD']} dbname={settings['POSTGRES_DB']} sslmode=disable")


def psql(settings: Settings, script: Path, variables: dict[str, str]) -> None:
    """Run a SQL script with psql as the superuser (the same scripts compose's init runs)."""
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", settings.postgres_host,
            "-p", str(settings.postgres_port), "-U", settings["POSTGRES_USER"], "-d", settings["POSTGRES_DB"]]
    for key, value in variables.items():
        args += ["-v", f"{key}={value}"]
    result = subprocess.run([*args, "-f", str(script)], capture_output=True, text=True,
                            env={**os.environ, "PGPASSWORD": settings["POSTGRES_PASSWORD"]})
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())
        raise StackError(f"{script.relative_to(REPO)} failed: {detail}")

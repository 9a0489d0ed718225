"""Flink: a standalone session cluster (one JobManager, one TaskManager) and the streaming job.

The Flink runtime is the one the PyFlink wheel ships (pyflink/lib, pyflink/bin in the `flink`
virtualenv that `make setup` builds from requirements/flink.lock); the connector jars and the
PostgreSQL JDBC driver come from Maven Central (pom.xml, profile `flink`, .tools/jvm/flink). Both
run in the foreground under supervisord through Flink's own scripts, with a generated config dir
in DATA_DIR/flink/conf and a lib dir of links to the jar sets, with the job's Java functions (built
from flink_jobs/udf by `make setup`; in lib, the `flink run` client plans with them too). State on
RocksDB; checkpoints (every 10 s, incremental, exactly once, retained on cancel) and savepoints
live under DATA_DIR/flink.

Once the TaskManager is healthy, provisioning makes sure the streaming job runs: it calls
`python -m flink_jobs.deploy ensure` (flink_jobs/deploy.py submits the job, resumed from the latest
retained checkpoint, and handles upgrades). This module only runs and checks the cluster; it imports
no job code.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import requests

from platform_common.config import TOOLS, Settings
from platform_common.contracts import FLINK_JOB_NAME
from platform_common.errors import StackError
from platform_common.flink_rest import overview, rest_url, running_job
from stack import jvm
from stack.service import Service, engine_command

VENV = TOOLS / "venvs" / "flink"
CONNECTOR_JARS = jvm.JVM_DIR / "flink"
UDF_JARS = jvm.JVM_DIR / "flink-udf"     # the job's Java functions (flink_jobs/udf, built by setup)
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
# the settings of .env each deployment passes on (compose: `${NAME:-default}`; tests/unit/test_compose.py)
FROM_SETTINGS = {
    "jobmanager.memory.process.size": "FLINK_JOBMANAGER_MEMORY",
    "taskmanager.memory.process.size": "FLINK_TASKMANAGER_MEMORY",
    "taskmanager.numberOfTaskSlots": "FLINK_TASKMANAGER_SLOTS",
}


def from_settings(settings: Settings) -> dict[str, str]:
    """FROM_SETTINGS with this deployment's values."""
    values = {"FLINK_JOBMANAGER_MEMORY": settings.flink_jobmanager_memory,
              "FLINK_TASKMANAGER_MEMORY": settings.flink_taskmanager_memory,
              "FLINK_TASKMANAGER_SLOTS": str(settings.flink_taskmanager_slots)}
    return {key: values[name] for key, name in FROM_SETTINGS.items()}


def _config(settings: Settings, paths: Paths) -> str:
    rest = urlparse(rest_url(settings))
    values = {
        "jobmanager.rpc.address": rest.hostname,
        "jobmanager.rpc.port": str(settings.flink_jobmanager_rpc_port),
        "jobmanager.bind-host": rest.hostname,
        "taskmanager.bind-host": rest.hostname,
        "taskmanager.host": rest.hostname,
        # any free port, new at each start (Flink's default): a TaskManager restarted at the address of the
        # one that just died met the JobManager's stale Pekko association to it, every message to it was
        # dropped ("read-only association") and it never registered, so the job waited for slots forever
        "taskmanager.rpc.port": "0",
        **from_settings(settings),
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


def _details(settings: Settings) -> str:
    try:
        job = running_job(settings)
    except (requests.RequestException, ValueError, KeyError):
        return ""
    return f"job {FLINK_JOB_NAME}: {job['state']}" if job else f"job {FLINK_JOB_NAME}: not running"


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
        extra_ports=(settings.flink_jobmanager_rpc_port,),
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
        # the job's deployment is its own code (flink_jobs/deploy.py)
        provision=lambda: engine_command("flink_jobs.deploy", "ensure"),
        details=lambda: _details(settings),
        environment=script_env(settings),
        stop_wait_seconds=30,
    )


# stack/services.py lists modules with a `service(settings)`: the TaskManager is its own entry
taskmanager = SimpleNamespace(service=taskmanager_service)


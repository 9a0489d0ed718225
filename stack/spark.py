"""Spark Connect: one long-lived Spark driver that the batch's Spark jobs reach over gRPC.

Started from the pinned pyspark distribution in the spark virtualenv (its bin/spark-submit and
jars; the Iceberg runtime and S3FileIO jars from .tools/jvm/spark), bound to 127.0.0.1. A job is a
thin client (`python -m spark_ml segment --connect`, spark_ml/lake.py): it skips the JVM start and
warm-up that a new local Spark pays on every Airflow task (make bench b=spark_modes).

The driver runs on SPARK_MASTER: local[2] by default; spark://host:7077 or another cluster manager
moves the work to a cluster and changes nothing else. Clients authenticate with SPARK_CONNECT_TOKEN
(from .env; the server reads it from its environment, so it is in no command line). The server
holds no other credential: each client session sets its own Iceberg catalog settings.

Once a new server process is up, provisioning starts its warm-up in the background (spark_ml/warmup.py:
one segmentation of generated customers in a throw-away scope, about a minute), so the first pipeline
run after `make up` does not pay the JVM's class loading and JIT (47 s of Spark work cold, 27 s warm,
on the demo population). Its one-line outcome goes to .data/logs/spark-warmup.log.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlparse

from platform_common.config import REPO, TOOLS, Settings
from platform_common.errors import StackError
from platform_common.net import port_open
from stack import jvm
from stack.service import Service
from stack.supervisor import Supervisor

VENV = TOOLS / "venvs" / "spark"
JARS = jvm.JVM_DIR / "spark"          # Iceberg Spark runtime, iceberg-aws-bundle, PostgreSQL JDBC
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# one line per task at INFO would cost CPU on a 2-core machine
LOG4J = """rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %p %c{1}: %m%n
logger.connect.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.connect.level = info
"""


def spark_home() -> Path:
    found = sorted(VENV.glob("lib/python3*/site-packages/pyspark"))
    if not found or not (found[0] / "bin" / "spark-submit").exists():
        raise StackError(f"PySpark not found in {VENV}; run `make setup` (builds it from requirements/spark.lock)")
    return found[0]


def connect_port(settings: Settings) -> int:
    # SPARK_CONNECT_URL is an sc:// URL (platform_common.config); Spark Connect's default port when it names none
    return urlparse(settings.spark_connect_url).port or 15002


def server_conf(settings: Settings) -> dict[str, str]:
    """The server's Spark settings: what every session shares (the catalog is set per session)."""
    return {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(connect_port(settings)),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.jars": ",".join(sorted(str(p) for p in JARS.glob("*.jar"))),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        # sessions of clients that died without closing are released after 10 min, not the default hour
        "spark.connect.session.manager.defaultSessionTimeout": "10m",
    }


def write_cluster_defaults(settings: Settings, folder: Path) -> None:
    """spark-defaults.conf (mode 0600) with what a standalone cluster's daemons and its drivers agree on: RPC
    authentication with the shared secret SPARK_CLUSTER_SECRET (kept off every command line)."""
    path = folder / "spark-defaults.conf"
    folder.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(f"spark.authenticate true\nspark.authenticate.secret {settings.spark_cluster_secret}\n")


def warmup_result(settings: Settings, pid: int) -> Path:
    """Where the warm-up of server process `pid` writes its outcome (empty while it runs)."""
    return settings.data_dir / "spark" / f"warmup.{pid}"


def start_warmup(settings: Settings) -> None:
    """Start the warm-up of the running server in the background, once per server process."""
    sup = Supervisor(settings)
    pid = (sup.info("spark") or {}).get("pid")
    marker = warmup_result(settings, pid)
    if not pid or marker.exists():
        return
    for old in marker.parent.glob("warmup.*"):    # earlier server processes
        old.unlink()
    marker.touch()
    with sup.log_path("spark-warmup").open("a") as log:
        # detached: `make up` goes on starting the services that follow (Airflow) meanwhile
        subprocess.Popen([str(VENV / "bin" / "python"), "-m", "spark_ml.warmup", "--result", str(marker)],
                         cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def service(settings: Settings) -> Service:
    port = connect_port(settings)
    conf_dir = settings.data_dir / "spark" / "conf"

    def prepare() -> None:
        conf_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "spark" / "tmp").mkdir(parents=True, exist_ok=True)
        (conf_dir / "log4j2.properties").write_text(LOG4J)
        if not any("iceberg-spark-runtime" in p.name for p in JARS.glob("*.jar")):
            raise StackError(f"the Iceberg jars are missing from {JARS}; run `make setup`")
        # on a standalone master (stack/spark_cluster.py) the driver must know the cluster's secret
        if settings.spark_master.startswith("spark://"):
            write_cluster_defaults(settings, conf_dir)
        else:
            (conf_dir / "spark-defaults.conf").unlink(missing_ok=True)

    home = spark_home_or_placeholder()
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--name", "spark-connect",
               "--master", settings.spark_master]
    for key, value in server_conf(settings).items():
        command += ["--conf", f"{key}={value}"]
    return Service(
        name="spark",
        port=port,
        port_setting="SPARK_CONNECT_URL",
        url=settings.spark_connect_url,
        command=[*command, "spark-internal"],
        # the gRPC port opens only once the driver (its SparkContext) is up
        healthy=lambda: port_open(port),
        # what its sessions reach: the Iceberg catalog (PostgreSQL) and the warehouse (MinIO); the stack's
        # standalone cluster when it is the driver's master
        depends_on=("postgres", "minio",
                    *(("spark-worker",) if settings.spark_master == settings.spark_standalone_url else ())),
        prepare=prepare,
        provision=lambda: start_warmup(settings),
        environment={"SPARK_HOME": str(home), "SPARK_CONF_DIR": str(conf_dir), "SPARK_LOCAL_IP": "127.0.0.1",
                     "SPARK_LOCAL_DIRS": str(settings.data_dir / "spark" / "tmp"),
                     "PYSPARK_PYTHON": str(VENV / "bin" / "python"),
                     "SPARK_CONNECT_AUTHENTICATE_TOKEN": settings.spark_connect_token},
        details=lambda: f"master {settings.spark_master}; clients: SPARK_CONNECT_TOKEN in .env",
        stop_wait_seconds=30,
    )


def spark_home_or_placeholder() -> Path:
    # the service list is built before `make setup` has run (e.g. `make down` on a fresh clone)
    try:
        return spark_home()
    except StackError:
        return VENV / "pyspark"

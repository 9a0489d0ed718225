"""A Spark standalone cluster: one master and one worker, as on a real cluster, from the pinned pyspark.

Both run in the foreground under supervisord through pyspark's own `bin/spark-class` (the spark
virtualenv's distribution, the same jars the Spark Connect server and the jobs use), bound to
127.0.0.1. Point SPARK_MASTER at SPARK_STANDALONE_URL and the Spark Connect server's driver (stack/spark.py),
and every `python -m spark_ml` without --connect, run their executors on the worker; point it at
another cluster's master and nothing else changes. The default stays local[2]: on one 2-core machine
a driver with its own executor threads is faster than one that sends every task to another JVM
(`make bench b=spark_modes`, docs/iceberg.md), so the cluster idles unless chosen.

Security: RPC between the master, the worker, drivers and executors requires the shared secret
SPARK_CLUSTER_SECRET (spark.authenticate; it is in SPARK_CONF_DIR/spark-defaults.conf, mode 0600, never
on a command line); the master's REST submission server (6066, unauthenticated) is off; the web UIs
(read-only here: no kill links) listen on 127.0.0.1 only.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

from platform_common.config import Settings
from platform_common.net import get_json
from stack.service import Service
from stack.spark import spark_home_or_placeholder, write_cluster_defaults

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# the daemons' own settings (their JVMs read SPARK_MASTER_OPTS / SPARK_WORKER_OPTS)
DAEMON_OPTS = "-Dspark.master.rest.enabled=false -Dspark.ui.killEnabled=false -Duser.timezone=UTC"


def standalone(settings: Settings) -> tuple[str, int]:
    """The master's host and port (SPARK_STANDALONE_URL, a spark://host:port URL: platform_common.config)."""
    parsed = urlparse(settings.spark_standalone_url)
    return parsed.hostname, parsed.port


def conf_dir(settings: Settings) -> Path:
    """SPARK_CONF_DIR of the master and the worker (the Connect server has its own, stack/spark.py)."""
    return settings.data_dir / "spark" / "cluster-conf"


def environment(settings: Settings) -> dict[str, str]:
    home = spark_home_or_placeholder()
    return {"SPARK_HOME": str(home), "SPARK_CONF_DIR": str(conf_dir(settings)), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_PUBLIC_DNS": "127.0.0.1", "SPARK_LOCAL_DIRS": str(settings.data_dir / "spark" / "tmp"),
            "SPARK_WORKER_DIR": str(settings.data_dir / "spark" / "work"),
            "SPARK_MASTER_OPTS": DAEMON_OPTS, "SPARK_WORKER_OPTS": DAEMON_OPTS,
            "SPARK_NO_DAEMONIZE": "1"}


def master_state(settings: Settings) -> dict | None:
    """The master's own view (its web UI's /json): status, workers, applications."""
    return get_json(f"http://127.0.0.1:{settings.spark_master_ui_port}/json/", timeout=3)


def alive_workers(settings: Settings) -> list[dict]:
    state = master_state(settings) or {}
    return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


def service(settings: Settings) -> Service:
    host, port = standalone(settings)

    def prepare() -> None:
        for folder in ("tmp", "work"):
            (settings.data_dir / "spark" / folder).mkdir(parents=True, exist_ok=True)
        write_cluster_defaults(settings, conf_dir(settings))

    def details() -> str:
        state = master_state(settings) or {}
        return (f"{state.get('status', '?')}; workers {state.get('aliveworkers', 0)}, "
                f"applications running {len(state.get('activeapps', []))}")

    return Service(
        name="spark-master",
        port=port,
        port_setting="SPARK_STANDALONE_URL",
        url=f"http://127.0.0.1:{settings.spark_master_ui_port}",
        command=[str(spark_home_or_placeholder() / "bin" / "spark-class"), MASTER_CLASS, "--host", host,
                 "--port", str(port), "--webui-port", str(settings.spark_master_ui_port)],
        healthy=lambda: (master_state(settings) or {}).get("status") == "ALIVE",
        prepare=prepare,
        details=details,
        environment=environment(settings),
        extra_ports=(settings.spark_master_ui_port,),
        stop_wait_seconds=30,
    )


def worker_service(settings: Settings) -> Service:
    host, port = standalone(settings)
    return Service(
        name="spark-worker",
        port=None,             # its RPC port is new at each start: the master knows it by registration
        port_setting=None,
        url=f"http://127.0.0.1:{settings.spark_worker_ui_port}",
        command=[str(spark_home_or_placeholder() / "bin" / "spark-class"), WORKER_CLASS, "--host", "127.0.0.1",
                 "--webui-port", str(settings.spark_worker_ui_port), "--cores", str(settings.spark_worker_cores),
                 "--memory", settings.spark_worker_memory, f"spark://{host}:{port}"],
        healthy=lambda: bool(alive_workers(settings)),
        depends_on=("spark-master",),
        prepare=lambda: write_cluster_defaults(settings, conf_dir(settings)),
        details=lambda: ", ".join(f"{w['cores']} cores, {w['memory']} MiB" for w in alive_workers(settings)),
        environment=environment(settings),
        extra_ports=(settings.spark_worker_ui_port,),
        stop_wait_seconds=30,
    )


# stack/services.py lists modules with a `service(settings)`: the worker is its own entry
worker = SimpleNamespace(service=worker_service)

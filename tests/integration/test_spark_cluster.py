"""The stack's Spark standalone cluster (stack/spark_cluster.py): a master and a worker from the pinned pyspark,
on 127.0.0.1 only, with the shared secret on no command line, running a real job's executors: a driver in
the spark venv (spark_ml.lake, SPARK_MASTER = the cluster) writes an Iceberg table to MinIO from the worker's
executor and reads it back, and the master records the application as finished; a driver without the
secret is refused."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import uuid

import psutil
import pytest

from platform_common.config import REPO
from stack import spark_cluster
from stack.supervisor import Supervisor
from tests.conftest import ensure_up
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
SPARK_PY = REPO / ".tools" / "venvs" / "spark" / "bin" / "python"


@pytest.fixture(scope="module")
def cluster(settings):
    return ensure_up(settings, "spark-worker", "minio", "postgres")


def jvm(settings, name: str) -> psutil.Process:
    pid = Supervisor(settings).info(name)["pid"]
    java = [p for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)] if p.name() == "java"]
    assert len(java) == 1, java
    return java[0]


def test_one_master_and_one_worker_with_the_configured_resources(cluster):
    state = spark_cluster.master_state(cluster)
    assert state["status"] == "ALIVE"
    assert state["url"] == cluster.spark_standalone_url
    workers = spark_cluster.alive_workers(cluster)
    assert len(workers) == 1, state["workers"]
    assert workers[0]["cores"] == cluster.spark_worker_cores
    assert workers[0]["host"] == "127.0.0.1"


@pytest.mark.parametrize("name", ["spark-master", "spark-worker"])
def test_daemons_listen_on_loopback_only_and_keep_the_secret_off_their_command_line(cluster, name):
    process = jvm(cluster, name)
    listening = {str(getattr(a, "ipv4_mapped", None) or a) for a in
                 (ipaddress.ip_address(c.laddr.ip) for c in process.net_connections("tcp")
                  if c.status == psutil.CONN_LISTEN)}
    # the JVM listens on IPv6 sockets: 127.0.0.1 shows as ::ffff:127.0.0.1
    assert listening == {"127.0.0.1"}, listening
    assert cluster.spark_cluster_secret not in " ".join(process.cmdline())
    defaults = spark_cluster.conf_dir(cluster) / "spark-defaults.conf"
    assert defaults.stat().st_mode & 0o777 == 0o600


def test_a_driver_runs_an_iceberg_job_on_the_workers_executor(cluster):
    app, ns = f"tests.spark_cluster.{uuid.uuid4().hex[:8]}", f"t_cluster_{uuid.uuid4().hex[:8]}"
    code = f"""
import json
from spark_ml import lake
spark = lake.spark_session({app!r})
try:
    spark.sql("CREATE NAMESPACE lakehouse.{ns}")
    spark.sql("CREATE TABLE lakehouse.{ns}.numbers (id BIGINT) USING iceberg")
    spark.range(0, 10000, numPartitions=4).writeTo("lakehouse.{ns}.numbers").append()
    total, rows = spark.sql("SELECT sum(id), count(*) FROM lakehouse.{ns}.numbers").first()
    executors = spark.sparkContext._jsc.sc().getExecutorIds().size()
    print(json.dumps({{"master": spark.sparkContext.master, "total": total, "rows": rows,
                       "executors": executors}}))
finally:
    spark.sql("DROP TABLE IF EXISTS lakehouse.{ns}.numbers PURGE")
    spark.sql("DROP NAMESPACE IF EXISTS lakehouse.{ns}")
    spark.stop()
"""
    out = subprocess.run([str(SPARK_PY), "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "SPARK_MASTER": cluster.spark_standalone_url,
                              "SPARK_DRIVER_MEMORY": "1g"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"master": cluster.spark_standalone_url, "total": 49995000, "rows": 10000, "executors": 1}
    finished = [a for a in spark_cluster.master_state(cluster)["completedapps"] if a["name"] == app]
    assert [a["state"] for a in finished] == ["FINISHED"], finished


def test_a_driver_without_the_secret_is_refused(cluster, tmp_path):
    # spark.authenticate: the master answers a driver that does not speak SASL with the secret by closing
    # the connection, so the application never registers. Spark would try 3 times, 20 s apart (constants in
    # StandaloneAppClient), and each try is refused the same way: the driver is stopped after the first.
    app = f"tests.spark_cluster.noauth.{uuid.uuid4().hex[:8]}"
    code = f"""
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master({cluster.spark_standalone_url!r}).appName({app!r})
         .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1").getOrCreate())
print("ran:", spark.range(10).count())
"""
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = subprocess.Popen([str(SPARK_PY), "-c", code], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                  env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
        try:
            refused = wait_for(lambda: "Expected SaslMessage" in log.read_text() or driver.poll() is not None,
                               True, timeout=120, interval=0.5)
            state = spark_cluster.master_state(cluster)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)   # the driver's JVM with it
            driver.wait(30)
    text = log.read_text()
    assert refused and "ran:" not in text, text[-3000:]
    assert "Failed to connect to master" in text and "(maybe your client does not have SASL enabled?)" in text, \
        text[-3000:]
    assert app not in {a["name"] for a in state["activeapps"] + state["completedapps"]}

"""The stack's Spark Connect server (stack/spark.py), through real pyspark clients in the spark venv:
it answers only on 127.0.0.1 and only with the token, a client session reaches the Iceberg catalog
with its own settings, and the server process carries no credential on its command line or in the
settings a fresh session can read."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid

import psutil
import pytest

from platform_common.config import REPO
from stack import spark
from stack.supervisor import Supervisor
from tests.conftest import ensure_up
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
SPARK_PY = REPO / ".tools" / "venvs" / "spark" / "bin" / "python"


@pytest.fixture(scope="module")
def spark_up(settings):
    return ensure_up(settings, "spark")


def client(code: str, token: str | None = "settings") -> subprocess.CompletedProcess:
    """Run `code` in a new spark-venv process (a Connect client leaves pyspark in remote mode for good, so
    it gets a process of its own); `spark` is a session made by spark_ml.lake, or by hand without a token."""
    if token == "settings":
        prelude = "from spark_ml import lake\nspark = lake.spark_session(connect=True)\n"
    else:
        prelude = ("import os\nfrom pyspark.sql import SparkSession\nfrom spark_ml import lake\n"
                   "os.environ.pop('SPARK_CONNECT_AUTHENTICATE_TOKEN', None)\n"
                   + (f"os.environ['SPARK_CONNECT_AUTHENTICATE_TOKEN'] = {token!r}\n" if token else "")
                   + "spark = SparkSession.builder.remote(lake.settings().spark_connect_url).getOrCreate()\n")
    script = prelude + "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) + "finally:\n    spark.stop()\n"
    return subprocess.run([str(SPARK_PY), "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin"})


def server_process(settings) -> psutil.Process:
    pid = Supervisor(settings).info("spark")["pid"]
    java = [p for p in psutil.Process(pid).children(recursive=True) + [psutil.Process(pid)] if p.name() == "java"]
    assert len(java) == 1, java
    return java[0]


def test_listens_on_loopback_only(spark_up):
    port = spark.connect_port(spark_up)
    listening = [c.laddr for c in server_process(spark_up).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    addresses = [ipaddress.ip_address(a.ip) for a in listening]
    # the JVM listens on an IPv6 socket: 127.0.0.1 shows as ::ffff:127.0.0.1
    assert [str(getattr(a, "ipv4_mapped", None) or a) for a in addresses] == ["127.0.0.1"], listening


def test_a_client_with_the_token_reaches_the_lakehouse_catalog(spark_up):
    # a namespace pyiceberg creates in the catalog is listed by Spark through the server, and one Spark
    # creates there is read back by pyiceberg (this test's own names: other clients, the server's warm-up
    # or a scheduled run, may add and remove namespaces meanwhile)
    ns = f"t_connect_{uuid.uuid4().hex[:8]}"
    out = client('import json\n'
                 'cat = lake.catalog()\n'
                 f'cat.create_namespace("{ns}_py")\n'
                 f'spark.sql("CREATE NAMESPACE lakehouse.{ns}_spark")\n'
                 'try:\n'
                 '    spark_ns = [r[0] for r in spark.sql("SHOW NAMESPACES IN lakehouse").collect()]\n'
                 '    iceberg_ns = [".".join(n) for n in cat.list_namespaces()]\n'
                 'finally:\n'
                 f'    cat.drop_namespace("{ns}_py")\n'
                 f'    cat.drop_namespace("{ns}_spark")\n'
                 'print(json.dumps([spark.sql("SELECT 40 + 2 AS x").first()["x"], spark_ns, iceberg_ns]))')
    assert out.returncode == 0, out.stderr[-2000:]
    answer, spark_ns, iceberg_ns = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer == 42
    assert {f"{ns}_py", f"{ns}_spark"} <= set(spark_ns) & set(iceberg_ns), (spark_ns, iceberg_ns)


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_a_client_without_the_right_token_is_refused(spark_up, token):
    out = client('spark.sql("SELECT 1").collect()', token=token)
    assert out.returncode != 0
    assert "UNAUTHENTICATED" in out.stderr or "Invalid authentication token" in out.stderr, out.stderr[-2000:]


def test_the_server_holds_no_credential(spark_up):
    secrets = {"SPARK_CONNECT_TOKEN": spark_up.spark_connect_token,
               "POSTGRES_ICEBERG_PASSWORD": spark_up.postgres_iceberg_password,
               "MINIO_ROOT_PASSWORD": spark_up.minio_root_password, "POSTGRES_PASSWORD": spark_up.postgres_password}
    cmdline = " ".join(server_process(spark_up).cmdline())
    assert [name for name, value in secrets.items() if value in cmdline] == []
    # a fresh session (no catalog settings of its own) sees no catalog credential among the server's settings
    settings_code = 'print(json.dumps({r[0]: r[1] for r in spark.sql("SET -v").collect() + spark.sql("SET").collect()}))'
    out = client("import json\n" + settings_code, token=spark_up.spark_connect_token)
    assert out.returncode == 0, out.stderr[-2000:]
    shown = out.stdout.strip().splitlines()[-1]
    assert [name for name, value in secrets.items() if value in shown] == []
    assert "spark.sql.catalog.lakehouse" not in json.loads(shown)


def test_each_new_server_is_warmed_up_once_and_the_warm_up_leaves_nothing(spark_up):
    """`up` starts the warm-up of a new server process in the background (stack/spark.py); another `up` of
    the same process does not start a second one; it ends ok and removes its scope's namespaces and objects."""
    pid = Supervisor(spark_up).info("spark")["pid"]
    result = spark.warmup_result(spark_up, pid)
    assert result.exists(), "provisioning did not start the warm-up of this server process"
    spark.start_warmup(spark_up)
    running = [p for p in psutil.process_iter(["cmdline"]) if "spark_ml.warmup" in (p.info["cmdline"] or [])]
    assert len(running) <= 1, running
    assert wait_for(lambda: bool(result.read_text()), True, timeout=300, interval=2), "the warm-up did not end"
    outcome = json.loads(result.read_text())
    assert outcome["ok"] and outcome["customers"] == 1000, outcome
    out = client('import json\n'
                 'from spark_ml import warmup\n'
                 's = lake.settings()\n'
                 'ns = [".".join(n) for n in lake.catalog().list_namespaces()]\n'
                 'objs = [o.object_name for o in lake.minio(s).list_objects(s.minio_bucket, '
                 'prefix=f"scopes/{warmup.SCOPE}/", recursive=True)]\n'
                 'print(json.dumps([[n for n in ns if n.startswith(warmup.SCOPE)], objs]))')
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], []]

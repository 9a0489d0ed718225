"""Where things live and how to reach them: the one Iceberg catalog (PostgreSQL), MinIO, ClickHouse, Spark.

The catalog is pyiceberg's SQL catalog in PostgreSQL; its tables (`iceberg_tables`,
`iceberg_namespace_properties`) are those of Iceberg's Java JdbcCatalog, so Spark reads and writes
the same tables through `org.apache.iceberg.jdbc.JdbcCatalog` on the same database (docs/iceberg.md).
Data and metadata files are on MinIO under s3://<MINIO_BUCKET>/warehouse: pyiceberg reaches them
with pyarrow's S3FileSystem, Spark with Iceberg's S3FileIO (iceberg-aws-bundle), both path-style.
"""
from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote_plus

from platform_common import config
from platform_common.config import REPO, TOOLS, Settings

CATALOG = "lakehouse"                 # the catalog's name in iceberg_tables.catalog_name and in Spark
FEATURES_TABLE = "marts.customer_features"
SEGMENTS_TABLE = "ml.customer_segments"
PROFILES_TABLE = "ml.segment_profiles"
CHURN_SCORES_TABLE = "ml.churn_scores"
# The catalog tables' layout, pinned for both engines: whichever touches an empty database first
# creates them, pyiceberg as v1 by default, Iceberg's JdbcCatalog as V0, and on V0 Spark cannot even
# ask whether a table exists ("initialized without view support"). Both migrate a V0 catalog to V1.
CATALOG_SCHEMA_VERSION = "V1"
SPARK_JARS_DIR = TOOLS / "jvm" / "spark"
MODELS_PREFIX = "models/segmentation"
S3_REGION = "us-east-1"               # MinIO ignores it; the AWS SDKs need one


@lru_cache(maxsize=1)
def settings() -> Settings:
    return config.load()


def warehouse(s: Settings) -> str:
    return f"s3://{s.minio_bucket}/warehouse"


def catalog_properties(s: Settings) -> dict[str, str]:
    """pyiceberg SqlCatalog properties (PostgreSQL catalog, MinIO FileIO)."""
    uri = (f"postgresql+psycopg2://{quote_plus(s.postgres_iceberg_user)}:{quote_plus(s.postgres_iceberg_password)}"
           f"@{s.postgres_host}:{s.postgres_port}/{s.postgres_db}")
    return {
        "type": "sql",
        "uri": uri,
        "warehouse": warehouse(s),
        "init_catalog_tables": "true",
        "schema_version": CATALOG_SCHEMA_VERSION.lower(),
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.endpoint": s.minio_endpoint,
        "s3.access-key-id": s.minio_root_user,
        "s3.secret-access-key": s.minio_root_password,
        "s3.region": S3_REGION,
        "s3.path-style-access": "true",
    }


def catalog(s: Settings | None = None):
    from pyiceberg.catalog.sql import SqlCatalog

    s = s or settings()
    props = catalog_properties(s)
    return SqlCatalog(CATALOG, **{k: v for k, v in props.items() if k != "type"})


def require_table(name: str, produced_by: str, cat=None):
    """The Iceberg table `name`, or a one-line error naming the step that creates it.

    Spark would report it as TABLE_OR_VIEW_NOT_FOUND with a stack trace.
    """
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return (cat or catalog()).load_table(name)
    except NoSuchTableError:
        raise RuntimeError(f"Iceberg table {CATALOG}.{name} does not exist yet; run {produced_by} first") from None


def minio(s: Settings | None = None):
    from minio import Minio

    s = s or settings()
    return Minio(f"{s.minio_host}:{s.minio_port}", access_key=s.minio_root_user,
                 secret_key=s.minio_root_password, secure=s.minio_secure)


def clickhouse(s: Settings | None = None, **kwargs):
    import clickhouse_connect

    s = s or settings()
    return clickhouse_connect.get_client(host=s.clickhouse_host, port=s.clickhouse_port,
                                         username=s.clickhouse_user, password=s.clickhouse_password, **kwargs)


def spark_jars() -> list[str]:
    jars = sorted(str(p) for p in SPARK_JARS_DIR.glob("*.jar"))
    if not any("iceberg-spark-runtime" in j for j in jars) or not any("iceberg-aws-bundle" in j for j in jars):
        raise SystemExit(f"error: the Iceberg jars are missing from {SPARK_JARS_DIR}; run `make setup`")
    return jars


def spark_catalog_conf(s: Settings, name: str = CATALOG, jdbc_uri: str | None = None,
                       schema_version: str = CATALOG_SCHEMA_VERSION) -> dict[str, str]:
    """Spark settings of the Iceberg catalog `name`: the same JDBC catalog pyiceberg uses (the tests
    point a second name at another PostgreSQL schema through `jdbc_uri`)."""
    c = f"spark.sql.catalog.{name}"
    return {
        c: "org.apache.iceberg.spark.SparkCatalog",
        f"{c}.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        f"{c}.uri": jdbc_uri or f"jdbc:postgresql://{s.postgres_host}:{s.postgres_port}/{s.postgres_db}",
        f"{c}.jdbc.user": s.postgres_iceberg_user,
        f"{c}.jdbc.password": s.postgres_iceberg_password,
        f"{c}.jdbc.schema-version": schema_version,
        f"{c}.warehouse": warehouse(s),
        # pyiceberg commits to the same tables from outside this session: always read the current metadata
        f"{c}.cache-enabled": "false",
        f"{c}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{c}.s3.endpoint": s.minio_endpoint,
        f"{c}.s3.path-style-access": "true",
        f"{c}.s3.access-key-id": s.minio_root_user,
        f"{c}.s3.secret-access-key": s.minio_root_password,
        f"{c}.client.region": S3_REGION,
    }


def spark_session(app: str = "spark_ml", driver_memory: str | None = None, shuffle_partitions: int = 4,
                  connect: bool = False):
    """A Spark session with the Iceberg catalog `lakehouse` = the same JDBC catalog pyiceberg uses.

    connect=False: Spark inside this process, on SPARK_MASTER (local[2]): a JVM start and warm-up per call.
    connect=True: a session on the stack's Spark Connect server (SPARK_CONNECT_URL, stack/spark.py), a
    long-lived driver; the catalog's settings, credentials included, are this session's own.
    """
    s = settings()
    if connect:
        return _connect_session(s, shuffle_partitions)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # bind the driver to loopback, like every service here
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    local_dir = s.data_dir / "spark" / "tmp"   # shuffle and spill files
    local_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SPARK_LOCAL_DIRS", str(local_dir))
    master = os.environ.get("SPARK_MASTER") or s.spark_master
    builder = (
        SparkSession.builder.appName(app)
        .master(master)
        .config("spark.driver.memory", driver_memory or os.environ.get("SPARK_DRIVER_MEMORY") or s.spark_driver_memory)
        .config("spark.jars", ",".join(spark_jars()))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
    )
    for key, value in spark_catalog_conf(s).items():
        builder = builder.config(key, value)
    if master.startswith("spark://"):
        # a standalone cluster's RPC (the stack's: stack/spark_cluster.py) requires the shared secret
        builder = builder.config("spark.authenticate", "true").config("spark.authenticate.secret",
                                                                       s.spark_cluster_secret)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def connect_safe_gc():
    """No cyclic garbage collection inside; what it would have freed is freed on the way out.

    pyspark 4.1's Spark Connect client deletes a fitted model on the server from the model's finalizer. When
    the cyclic GC runs that finalizer in the middle of another gRPC call of the same thread, the new call
    waits for the channel's event thread, which waits for the lock the outer call holds: the segment task
    hung for good there (py-spy: StandardScalerModel.mean -> _next -> GC -> release_ref -> _next). Run
    from here instead, the finalizers' calls are ordinary calls."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


def _connect_session(s: Settings, shuffle_partitions: int):
    from pyspark.sql import SparkSession

    # the client sends the token as a bearer header; without TLS it only does so to a host named localhost
    os.environ["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = s.spark_connect_token
    try:
        spark = SparkSession.builder.remote(s.spark_connect_url).getOrCreate()
        spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        for key, value in spark_catalog_conf(s).items():
            spark.conf.set(key, value)
    except Exception as exc:  # noqa: BLE001 - gRPC errors carry pages of detail; one line says what to do
        if "UNAVAILABLE" in str(exc) or "Connection refused" in str(exc):
            raise RuntimeError(f"no Spark Connect server answers at {s.spark_connect_url}; "
                               "start it with `make up s=spark`") from None
        raise
    return spark


def data_dir() -> Path:
    path = settings().data_dir / "spark_ml"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_ground_truth() -> Path:
    return settings().data_dir / "simulator" / "churn_ground_truth.csv"


__all__ = ["REPO"]

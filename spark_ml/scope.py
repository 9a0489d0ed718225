"""A named scope for spark_ml: its own Iceberg namespaces, ClickHouse database and MinIO prefix.

`python -m spark_ml run --scope NAME` (and the tests) write to `<NAME>_marts.customer_features`,
`<NAME>_ml.*` in the Iceberg catalog, ClickHouse `ml_<NAME>.*` (the same DDL as `ml.*`, from the
migration) and `s3://<bucket>/scopes/<NAME>/models/segmentation`, so a test run never replaces the
platform's feature snapshot or becomes what dashboards read from `ml.*_latest`.
`python -m spark_ml drop-scope --scope NAME` removes all of it.
"""
from __future__ import annotations

import re

from platform_common.config import REPO
from spark_ml import lake, load

# the ml.* tables of the segments and of the churn scores
MIGRATIONS = [REPO / "sql" / "clickhouse" / "migrations" / name
              for name in ("00003_ml_segments.sql", "00006_churn_scores.sql", "00007_churn_drift.sql")]
NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def names(scope: str) -> dict[str, str]:
    if not NAME.match(scope):
        raise ValueError(f"scope {scope!r} must be lower-case letters, digits and _ (starting with a letter)")
    return {"marts": f"{scope}_marts", "ml": f"{scope}_ml", "clickhouse_db": f"ml_{scope}",
            "minio_prefix": f"scopes/{scope}/"}


def point(scope: str) -> dict[str, str]:
    """Point spark_ml (lake.*, load.*) at the scope, without touching any service. Returns its names."""
    n = names(scope)
    lake.FEATURES_TABLE = f"{n['marts']}.customer_features"
    lake.SEGMENTS_TABLE, lake.PROFILES_TABLE = f"{n['ml']}.customer_segments", f"{n['ml']}.segment_profiles"
    lake.MODELS_PREFIX = f"{n['minio_prefix']}models/segmentation"
    db = n["clickhouse_db"]
    load.SEGMENTS, load.PROFILES, load.RUNS = f"{db}.customer_segments", f"{db}.segment_profiles", f"{db}.segmentation_runs"
    lake.CHURN_SCORES_TABLE = f"{n['ml']}.churn_scores"
    from spark_ml.churn import registry, score, train
    score.SCORES, score.RUNS, score.DRIFT = f"{db}.churn_scores", f"{db}.churn_scoring_runs", f"{db}.churn_drift"
    train.CALIBRATION_TABLE = f"{db}.churn_model_calibration"
    registry.MODEL_NAME = registry.EXPERIMENT = f"churn_model_{scope}"
    return n


def apply(scope: str) -> dict[str, str]:
    """Point spark_ml at the scope (point) and create its ClickHouse tables. Returns its names."""
    n = point(scope)
    db = n["clickhouse_db"]
    ch = lake.clickhouse()
    ch.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    for migration in MIGRATIONS:
        for stmt in migration.read_text().split("-- +goose Down")[0].replace("ml.", f"{db}.").split(";"):
            body = "\n".join(line for line in stmt.splitlines() if not line.strip().startswith("--")).strip()
            if body:
                ch.command(body)
    return n


def drop(scope: str) -> None:
    """Remove the scope's ClickHouse database, Iceberg tables and namespaces, and MinIO objects."""
    lake.clickhouse().command(f"DROP DATABASE IF EXISTS {names(scope)['clickhouse_db']}")
    drop_lake(scope)


def drop_lake(scope: str) -> None:
    """Remove the scope's Iceberg tables and namespaces, and its MinIO objects (not its ClickHouse database)."""
    n = names(scope)
    from pyiceberg.exceptions import NoSuchNamespaceError

    cat = lake.catalog()
    for ns in (n["marts"], n["ml"]):
        try:
            for ident in cat.list_tables(ns):
                cat.purge_table(ident)
            cat.drop_namespace(ns)
        except NoSuchNamespaceError:   # never created (nothing was written to it)
            pass
    s = lake.settings()
    client = lake.minio(s)
    for obj in client.list_objects(s.minio_bucket, prefix=n["minio_prefix"], recursive=True):
        client.remove_object(s.minio_bucket, obj.object_name)

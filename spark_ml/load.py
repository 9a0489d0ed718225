"""Load a segmentation run from Iceberg into ClickHouse (ml.customer_segments / ml.segment_profiles).

The Iceberg snapshot tagged with the run id (snapshot summary `run-id`) is read with pyiceberg and
inserted as Arrow. Each run is one partition (PARTITION BY run_id): a reload drops and rewrites
its partition, so loading twice never duplicates. The run is registered in ml.segmentation_runs
only after both tables hold exactly the Iceberg row counts; the `*_latest` views read the newest
registered run, so dashboards see one complete run, exactly once. Older runs beyond `keep_runs`
are dropped from ClickHouse (Iceberg keeps their snapshots for time travel).
"""
from __future__ import annotations

import json
import re
import time

import pyarrow as pa

from spark_ml import lake, segmentation

SEGMENTS = "ml.customer_segments"
PROFILES = "ml.segment_profiles"
RUNS = "ml.segmentation_runs"


class LoadError(RuntimeError):
    pass


RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def _drop_partition(ch, table: str, run_id: str) -> None:
    if not RUN_ID.match(run_id):
        raise LoadError(f"invalid run id {run_id!r}")
    ch.command(f"ALTER TABLE {table} DROP PARTITION '{run_id}'")


def snapshot_for_run(table, run_id: str | None):
    """The snapshot of `table` written by run `run_id` (default: the current one) and its run id."""
    if run_id is None:
        snap = table.current_snapshot()
        if snap is None:
            raise LoadError(f"{table.name()} has no snapshot; run `python -m spark_ml segment` first")
        return snap, snap.summary.get("run-id")
    for snap in reversed(table.snapshots()):
        if snap.summary.get("run-id") == run_id:
            return snap, run_id
    raise LoadError(f"no snapshot of {'.'.join(table.name())} was written by run {run_id}")


def _ms(table: pa.Table) -> pa.Table:
    """Timestamps as milliseconds UTC (ClickHouse DateTime64(3, 'UTC'))."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp("ms", tz="UTC"), safe=False))
    return table


def load(run_id: str | None = None, keep_runs: int = 10, catalog=None, client=None) -> dict:
    t0 = time.perf_counter()
    cat = catalog or lake.catalog()
    ch = client or lake.clickhouse()
    seg_t, prof_t = (lake.require_table(name, "`python -m spark_ml segment`", cat)
                     for name in (lake.SEGMENTS_TABLE, lake.PROFILES_TABLE))
    seg_snap, run_id = snapshot_for_run(seg_t, run_id)
    if not run_id:
        raise LoadError(f"the current snapshot of {lake.SEGMENTS_TABLE} carries no run-id")
    prof_snap, _ = snapshot_for_run(prof_t, run_id)
    segments = _ms(seg_t.scan(snapshot_id=seg_snap.snapshot_id).to_arrow())
    profiles = _ms(prof_t.scan(snapshot_id=prof_snap.snapshot_id).to_arrow())
    for name, data in (("customer_segments", segments), ("segment_profiles", profiles)):
        ids = set(data.column("run_id").unique().to_pylist())
        if ids != {run_id}:
            raise LoadError(f"Iceberg {name} snapshot for run {run_id} holds run ids {sorted(ids)}")
    metrics = segmentation.get_json(f"{lake.MODELS_PREFIX}/{run_id}/metrics.json") or {}

    partition = {"run_id": run_id}
    for table, data in ((SEGMENTS, segments), (PROFILES, profiles)):
        _drop_partition(ch, table, run_id)
        ch.insert_arrow(table, data)
        got = ch.command(f"SELECT count() FROM {table} WHERE run_id = {{run_id:String}}", parameters=partition)
        if int(got) != data.num_rows:
            raise LoadError(f"{table}: {got} rows for run {run_id} in ClickHouse, {data.num_rows} in Iceberg")
    churn = metrics.get("churn") or {}
    ch.insert(RUNS, [[run_id, segments.column("snapshot_date")[0].as_py(), segments.num_rows,
                      int(metrics.get("k", profiles.num_rows)), float(metrics.get("silhouette", float("nan"))),
                      churn.get("overall_rate"), metrics.get("model_uri", ""), json.dumps(metrics, default=str)]],
              column_names=["run_id", "snapshot_date", "customers", "k", "silhouette", "overall_churn_rate",
                            "model_uri", "metrics"])

    dropped = []
    if keep_runs > 0:
        runs = [r[0] for r in ch.query(f"SELECT DISTINCT run_id FROM {RUNS} ORDER BY run_id DESC").result_rows]
        for old in runs[keep_runs:]:
            for table in (SEGMENTS, PROFILES):
                _drop_partition(ch, table, old)
            ch.command(f"ALTER TABLE {RUNS} DELETE WHERE run_id = {{run_id:String}}", parameters={"run_id": old})
            dropped.append(old)
    return {"run_id": run_id, "customer_segments": segments.num_rows, "segment_profiles": profiles.num_rows,
            "iceberg_snapshots": {"customer_segments": seg_snap.snapshot_id, "segment_profiles": prof_snap.snapshot_id},
            "dropped_runs": dropped, "seconds": round(time.perf_counter() - t0, 3)}

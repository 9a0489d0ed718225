"""Warm a newly started Spark Connect server with one segmentation of generated customers in a scope.

A new JVM runs the first segmentation at about half speed: class loading and JIT compilation of the
Iceberg catalog and S3FileIO, the ML stages, the model writer. On the demo population the pipeline's
first `segment` took 47 s of Spark work and the next ones 27 s (make bench b=airflow). The stack runs
this once per server process, in the background right after the server is up (stack/spark.py), so
the first scheduled run does not pay for it.

It exercises the real path on a throw-away scope (spark_ml/scope.py, `spark_warmup_*` namespaces and
MinIO prefix, removed afterwards): synthetic features exported to Iceberg, the k search, the model
save and upload, the Iceberg writes. It touches no table and no model the platform reads.

    python -m spark_ml.warmup [--result FILE]   (spark venv; needs the spark service, PostgreSQL, MinIO)

--result: where its outcome goes as one JSON object ({"ok": true, ...} or {"ok": false, "error": ...}).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SCOPE = "spark_warmup"
CUSTOMERS = 1000


def warm(customers: int = CUSTOMERS) -> dict:
    from spark_ml import export, features, lake, scope, segmentation

    t0 = time.perf_counter()
    scope.point(SCOPE)
    scope.drop_lake(SCOPE)      # what an interrupted warm-up left
    try:
        data, truth = features.synthetic_arrow(customers, seed=1)
        export.export(source=f"synthetic(n={customers}) for the warm-up", data=data)
        with tempfile.TemporaryDirectory() as tmp:
            truth_path = Path(tmp) / "truth.csv"
            features.write_ground_truth(truth, truth_path)
            spark = lake.spark_session("spark_ml.warmup", connect=True)
            try:
                with lake.connect_safe_gc():
                    metrics = segmentation.run(spark, segmentation.Config(previous=None, sklearn_sample=0,
                                                                          ground_truth=str(truth_path)))
            finally:
                spark.stop()
    finally:
        scope.drop_lake(SCOPE)
    return {"customers": customers, "segmentation_seconds": metrics["timings"]["total_seconds"],
            "seconds": round(time.perf_counter() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_ml.warmup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--result", type=Path, default=None, help="write the outcome here as JSON")
    args = parser.parse_args(argv)
    try:
        out = {"ok": True, **warm()}
        print(f"spark warm-up done: {out}")
    except Exception as exc:   # a failed warm-up costs only speed: say why in one line
        out = {"ok": False, "error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}
        print(f"spark warm-up failed: {out['error']}")
    if args.result:
        args.result.write_text(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

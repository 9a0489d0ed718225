"""Dump one segmentation run's results bit for bit, to compare two versions of spark_ml on the same data.

    .tools/venvs/spark/bin/python benchmarks/segment_dump.py SCOPE OUT.json [parallelism=N ...]

Runs segmentation.run (no writes, fresh ids) on scope SCOPE's newest feature snapshot (export one first:
`python -m spark_ml export --scope SCOPE --synthetic 386`) with the spark_ml of this checkout (or
PYTHONPATH's), and writes k, the elbow curve, segments, the sklearn check, churn, the chosen model's
centres and cost (float hex), and every customer's cluster, segment and distance (float hex) to OUT.json;
prints the session start-up time and the run's timings. Two dumps from two checkouts are equal iff the
results are. SPARK_ML_REPO=/other/checkout runs that checkout's spark_ml; GROUND_TRUTH=path adds churn rates.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ.get("SPARK_ML_REPO", str(Path(__file__).resolve().parent.parent)))
import json, sys, time
scope_name, out = sys.argv[1], sys.argv[2]
extra = dict(a.split("=") for a in sys.argv[3:])
from spark_ml import lake, scope, segmentation
print("code:", segmentation.__file__, flush=True)
scope.apply(scope_name)
t0 = time.perf_counter()
spark = lake.spark_session("dump")
t_sess = time.perf_counter() - t0
captured = {}
_choose = segmentation.choose_k
def choose_k(*a, **kw):
    out = _choose(*a, **kw)
    captured["centers"] = [[float(v).hex() for v in c] for c in out[2].clusterCenters()]
    captured["sizes"] = list(out[2].summary.clusterSizes)
    captured["cost"] = float(out[2].summary.trainingCost).hex()
    captured["iter"] = out[2].summary.numIter
    return out
segmentation.choose_k = choose_k
cfg = segmentation.Config(ground_truth=os.environ.get("GROUND_TRUTH"), previous=None, write=False, **{k: int(v) for k, v in extra.items()})
t0 = time.perf_counter()
m = segmentation.run(spark, cfg)
t_run = time.perf_counter() - t0
scored = m.pop("_scored")
rows = scored.select("customer_id", "cluster", "segment_id", "segment_name", "distance").orderBy("customer_id").collect()
dump = {
    "k": m["k"], "silhouette": m["silhouette"], "training_cost": m["training_cost"],
    "curve": [{k: v for k, v in r.items() if k not in ("fit_seconds", "seconds")} for r in m["elbow_curve"]],
    "segments": m["segments"], "sklearn": {k: v for k, v in (m["sklearn"] or {}).items() if k != "sklearn_fit_seconds"},
    "churn": m["churn"],
    "model": captured,
    "labels": [[r.customer_id, r.cluster, r.segment_id, r.segment_name, float(r.distance).hex()] for r in rows],
}
json.dump(dump, open(out, "w"), indent=1, default=str)
print(json.dumps({"session_seconds": round(t_sess, 2), "run_seconds": round(t_run, 2), "timings": m["timings"]}))
spark.stop()

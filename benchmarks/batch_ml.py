"""Batch ML benchmark: export (ClickHouse → Iceberg) and the K-Means k search, on a sample as the job runs it vs all rows.

Run with the spark venv's python (the stack must be up: PostgreSQL, MinIO, ClickHouse):

    .tools/venvs/spark/bin/python benchmarks/batch_ml.py              # 100k and 1M customers
    .tools/venvs/spark/bin/python benchmarks/batch_ml.py --sizes 100000 --k-max 6

For each size: synthetic customer_features are inserted into a scratch ClickHouse table (not timed),
then timed: the export (query_arrow → contract check → Parquet on MinIO → one Iceberg commit), the
Spark preparation (read Iceberg, log/impute/scale), the k search as the job runs it
(segmentation.choose_k: scikit-learn on the driver over a ~50k sample, whose chosen model then assigns
every row in Spark), and the same search on every row. Silhouettes (Euclidean, as scikit-learn defines
it) are computed on one 10k-row sample for both. Everything lives in scratch namespaces and is dropped
at the end.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.spark_venv import hand_over

hand_over("pyspark", __file__)

from spark_ml import export, features, lake, segmentation  # noqa: E402 - after hand_over, in the venv that has them

REPO = Path(__file__).resolve().parent.parent


def bench(spark, n: int, k_min: int, k_max: int, seed: int, db: str) -> dict:
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    ch = lake.clickhouse()
    source = f"{db}.customer_features_{n}"
    data, _ = features.synthetic_arrow(n, seed=seed)
    ch.command(features.clickhouse_ddl(source))
    for start in range(0, n, 250_000):
        ch.insert_arrow(source, data.slice(start, 250_000))
    del data

    t0 = time.perf_counter()
    exported = export.export(source=source)
    export_s = time.perf_counter() - t0

    cfg = segmentation.Config(k_min=k_min, k_max=k_max, seed=seed)
    t0 = time.perf_counter()
    df, _ = segmentation.load_features(spark)
    df = df.cache()
    df.count()
    prep = segmentation._prep_pipeline().fit(df)
    X = prep.transform(df).select("customer_id", "features").cache()
    X.count()
    prep_s = time.perf_counter() - t0
    # what the job does: the search on a ~50k sample (driver side), its chosen model assigns all rows
    t0 = time.perf_counter()
    sampled_k, _, sampled_model, sampled = segmentation.choose_k(X, n, cfg)
    sampled_s = time.perf_counter() - t0
    # the same search on every row, for comparison: the collect of every row to the driver, then the search
    # (the sampled time above also holds the Spark model of the chosen centres and its scoring of every row)
    t0 = time.perf_counter()
    matrix = segmentation.features_matrix(X)
    k, curve, models = segmentation.search_k(matrix, cfg)
    full_s = time.perf_counter() - t0
    full_labels = models[k].labels_
    sampled_labels = np.array(sampled_model.transform(X).select("cluster").toPandas()["cluster"])
    idx = np.random.default_rng(seed).choice(len(matrix), min(10_000, len(matrix)), replace=False)
    for frame in (df, X):
        frame.unpersist()
    return {"n": n, "export_s": export_s, "export_rows": exported["rows"], "prep_s": prep_s,
            "full_s": full_s, "fit_s": sum(row["fit_seconds"] for row in curve),
            "sampled_s": sampled_s, "sampled_k": sampled_k, "sampled_rows": sampled["rows"], "k": k,
            "sil_full": silhouette_score(matrix[idx], full_labels[idx]),
            "sil_sampled": silhouette_score(matrix[idx], sampled_labels[idx]),
            "ari_sampled": adjusted_rand_score(full_labels, sampled_labels) if sampled_k == k else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--k-min", type=int, default=3)
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_DRIVER_MEMORY", "6g")
    uid = uuid.uuid4().hex[:8]
    lake.FEATURES_TABLE = f"bench_{uid}.customer_features"
    db = f"bench_ml_{uid}"
    ch = lake.clickhouse()
    ch.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    spark = lake.spark_session("benchmarks.batch_ml")
    rows = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            print(f"… {n:,} customers", file=sys.stderr, flush=True)
            rows.append(bench(spark, n, args.k_min, args.k_max, args.seed, db))
    finally:
        spark.stop()
        ch.command(f"DROP DATABASE IF EXISTS {db}")
        cat = lake.catalog()
        for ident in cat.list_tables(f"bench_{uid}"):
            cat.purge_table(ident)
        cat.drop_namespace(f"bench_{uid}")
    ks = f"k={args.k_min}..{args.k_max}"
    print(f"\nbatch ML on this machine (Spark local[2], {ks}, {segmentation.Config().n_init} starts per k; "
          "silhouettes on a 10k sample, Euclidean)")
    print("| customers | export CH→Iceberg | rows/s | Spark prep | k search as the job runs it (sample) | "
          "search rows | collect + k search on all rows | time all / sampled | k (all / sampled) | silhouette all / sampled | "
          "ARI (labels all vs sampled) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['export_s']:.1f} s | {r['n'] / r['export_s']:,.0f} | {r['prep_s']:.1f} s | "
              f"{r['sampled_s']:.1f} s | {r['sampled_rows']:,} | {r['full_s']:.1f} s | {r['full_s'] / r['sampled_s']:.1f}× | "
              f"{r['k']} / {r['sampled_k']} | {r['sil_full']:.3f} / {r['sil_sampled']:.3f} | {r['ari_sampled']:.3f} |")
    print("\nk search = scikit-learn KMeans (n_init starts) + Spark's silhouette per k, on the driver "
          "(segmentation.search_k); as the job runs it (segmentation.choose_k) on a ~50k sample whose chosen "
          "model then assigns every row in Spark.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

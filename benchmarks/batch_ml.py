"""Batch ML benchmark: export (ClickHouse → Iceberg) and K-Means with the k search, Spark vs scikit-learn.

Run with the spark venv's python (the stack must be up: PostgreSQL, MinIO, ClickHouse):

    .tools/venvs/spark/bin/python benchmarks/batch_ml.py              # 100k and 1M customers
    .tools/venvs/spark/bin/python benchmarks/batch_ml.py --sizes 100000 --k-max 6

For each size: synthetic customer_features are inserted into a scratch ClickHouse table (not timed),
then timed: the export (query_arrow → contract check → Parquet on MinIO → one Iceberg commit), the
Spark preparation (read Iceberg, log/impute/scale) and the k search (KMeans fit + silhouette per k,
local[2]), on all rows and (as the job runs it, segmentation.choose_k) on a ~50k sample whose best
start then assigns every row; scikit-learn's KMeans runs the same k search on the same scaled matrix (n_init=1,
like Spark's single k-means|| run). Silhouettes (Euclidean, as scikit-learn defines it) are computed
on one 10k-row sample for both. Everything lives in scratch namespaces and is dropped at the end.
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
    from pyspark.ml.functions import vector_to_array
    from sklearn.cluster import KMeans
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
    t0 = time.perf_counter()
    k, curve, models = segmentation.search_k(X, cfg)
    spark_search_s = time.perf_counter() - t0
    spark_fit_s = sum(row["fit_seconds"] for row in curve)
    # what the job does now: the search on a ~50k sample, then one fit of the chosen k on all rows
    t0 = time.perf_counter()
    sampled_k, _, sampled_model, sampled = segmentation.choose_k(X, n, cfg)
    sampled_s = time.perf_counter() - t0

    matrix = np.array(X.select(vector_to_array("features").alias("x")).toPandas()["x"].tolist())
    spark_labels = np.array(models[k].transform(X).select("cluster").toPandas()["cluster"])
    sampled_labels = np.array(sampled_model.transform(X).select("cluster").toPandas()["cluster"])
    t0 = time.perf_counter()
    sk_models = {kk: KMeans(n_clusters=kk, random_state=seed, n_init=1).fit(matrix) for kk in range(k_min, k_max + 1)}
    sk_fit_s = time.perf_counter() - t0
    idx = np.random.default_rng(seed).choice(len(matrix), min(10_000, len(matrix)), replace=False)
    t0 = time.perf_counter()
    sk_sil = {kk: silhouette_score(matrix[idx], m.labels_[idx]) for kk, m in sk_models.items()}
    sk_search_s = sk_fit_s + (time.perf_counter() - t0)
    sk_k = max(sk_sil, key=sk_sil.get)
    for frame in (df, X):
        frame.unpersist()
    return {"n": n, "export_s": export_s, "export_rows": exported["rows"], "prep_s": prep_s,
            "spark_search_s": spark_search_s, "spark_fit_s": spark_fit_s, "sk_fit_s": sk_fit_s,
            "sampled_s": sampled_s, "sampled_k": sampled_k, "sampled_rows": sampled["rows"],
            "sil_sampled": silhouette_score(matrix[idx], sampled_labels[idx]),
            "ari_sampled": adjusted_rand_score(spark_labels, sampled_labels) if sampled_k == k else float("nan"),
            "sk_search_s": sk_search_s, "k": k, "sk_k": sk_k,
            "sil_spark": silhouette_score(matrix[idx], spark_labels[idx]), "sil_sk": sk_sil[k]}


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
    print(f"\nbatch ML on this machine (Spark local[2], {ks}; silhouettes on a 10k sample, Euclidean)")
    print("| customers | export CH→Iceberg | rows/s | Spark prep | Spark k search | sklearn k search | "
          "Spark/sklearn time | k (Spark/sklearn best) | silhouette Spark | silhouette sklearn (same k) | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['export_s']:.1f} s | {r['n'] / r['export_s']:,.0f} | {r['prep_s']:.1f} s | "
              f"{r['spark_search_s']:.1f} s | {r['sk_search_s']:.1f} s | {r['spark_search_s'] / r['sk_search_s']:.1f}× | "
              f"{r['k']} / {r['sk_k']} | {r['sil_spark']:.3f} | {r['sil_sk']:.3f} | {r['sil_spark'] / r['sil_sk']:.3f} |")
    print("\nSpark k search = KMeans fit + ClusteringEvaluator silhouette (full data) per k; "
          "sklearn k search = KMeans fit per k (n_init=1) + silhouette on the 10k sample.")
    print("\nk search as the job runs it (segmentation.choose_k: search on a ~50k sample, its chosen "
          "model assigns all rows) vs the search on all rows, same process")
    print("| customers | search on all rows | sampled search, its model on all rows | speed-up | search rows | k (all / sampled) | "
          "silhouette all / sampled | ARI (labels all vs sampled) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['spark_search_s']:.1f} s | {r['sampled_s']:.1f} s | "
              f"{r['spark_search_s'] / r['sampled_s']:.1f}× | {r['sampled_rows']:,} | {r['k']} / {r['sampled_k']} | "
              f"{r['sil_spark']:.3f} / {r['sil_sampled']:.3f} | {r['ari_sampled']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Customer segmentation with Spark ML K-Means on the Iceberg feature table.

Pipeline: log1p of heavy-tailed columns and caps (SQLTransformer) → median Imputer → VectorAssembler →
StandardScaler (mean 0, std 1) → KMeans (best of n_init starts, on rows in feature-value order, so
equal features give equal segments whatever the ids). k: among the k with near-best silhouette, the
largest whose segments all get different names (pick_k; the elbow curve is recorded too). The search
runs on the driver with scikit-learn (at most a 50k-row sample above 50k customers); the chosen k's
best start becomes the Spark KMeansModel of the saved PipelineModel, which segments every customer
(choose_k).

Stable identities: the previous run's centroids (in log-feature units, stored in MinIO with the
run) are mapped into this run's scaled space and matched to the new centroids with the Hungarian
algorithm (scipy's linear_sum_assignment), so segment 3 stays segment 3 across retrains; a new
cluster without a partner gets a fresh id. Names (champions, loyal, at risk, hibernating, ...) are
derived from the centroid profile by explicit rules (name_for); where two segments fit one rule, the
second says how it differs (assign_names).

Outputs: lakehouse.ml.customer_segments and lakehouse.ml.segment_profiles (one Iceberg snapshot
each per run, full overwrite, run_id in the snapshot summary: time travel gives any earlier run),
and under s3://<bucket>/models/segmentation/<run_id>/ the PipelineModel, metrics.json and
segments.json (the centroids the next run matches against; latest.json points to the newest).
"""
from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spark_ml import features, lake


def name_for(z: dict[str, float]) -> str:
    """A human-readable name from a centroid's profile: z-scores (vs. all customers) of the clustered
    features, log1p-scaled where the feature is. The first rule that fits wins."""
    R, F, M, T = z["recency_days"], z["frequency"], z["monetary"], z["tenure_days"]
    S, A, L = z["sessions_30d"], z["activity_trend"], z["days_since_last_login"]
    value = (F + M) / 2
    if T <= -1.0:
        return "new visitors" if value <= -1.0 else "new customers"
    if S <= -0.6 and value >= 0.2:
        return "at risk"              # valuable history, gone quiet
    if S <= -0.6 or (R >= 1.0 and L >= 1.0):
        return "hibernating"          # inactive, little value
    if value >= 1.0 and S >= 0.8:
        return "champions"            # buy often, spend most, visit most
    if value >= 0.3 and R <= 0:
        return "loyal"
    if A <= -0.6:
        return "at risk"              # activity falling fast
    if R <= -0.3 and S >= 0.2:
        return "potential loyalists"  # recent and active, little history yet
    if R >= 0.3:
        return "need attention"       # drifting away
    return "occasional"


# How a segment differs from another of the same rule name, by the feature where their centroids differ
# most: (phrase when this segment's z-score is higher, phrase when lower).
CONTRASTS: dict[str, tuple[str, str]] = {
    "recency_days": ("ordered longer ago", "ordered recently"),
    "frequency": ("more orders", "fewer orders"),
    "monetary": ("higher spend", "lower spend"),
    "tenure_days": ("longer tenure", "shorter tenure"),
    "sessions_30d": ("more visits", "fewer visits"),
    "orders_90d": ("more recent orders", "fewer recent orders"),
    "activity_trend": ("rising activity", "falling activity"),
    "days_since_last_login": ("logged in longer ago", "logged in recently"),
}


def assign_names(z_centroids: dict[int, dict[str, float]], sizes: dict[int, int] | None = None) -> dict[int, str]:
    """segment id → a distinct name. name_for() gives the rule name; where several segments fit one rule,
    the largest keeps the plain name and each other one says how it differs from that one, by the
    clustered feature where their centroids are furthest apart ("occasional, higher spend"). Only a
    segment that would still collide with another is numbered."""
    names = {sid: name_for(z) for sid, z in z_centroids.items()}
    sizes = sizes or {}
    out: dict[int, str] = {}
    for name in sorted(set(names.values())):
        sids = sorted((s for s in names if names[s] == name), key=lambda s: (-sizes.get(s, 0), s))
        ref = z_centroids[sids[0]]
        out[sids[0]] = name
        for sid in sids[1:]:
            diff = {f: z_centroids[sid][f] - ref[f] for f in CONTRASTS}
            feature = max(diff, key=lambda f: (abs(diff[f]), f))
            out[sid] = f"{name}, {CONTRASTS[feature][0 if diff[feature] > 0 else 1]}"
    taken: dict[str, int] = {}
    for sid in sorted(out, key=lambda s: (-sizes.get(s, 0), s)):
        base = out[sid]
        taken[base] = taken.get(base, 0) + 1
        if taken[base] > 1:
            out[sid] = f"{base} {taken[base]}"
    return out


def z_profile(center) -> dict[str, float]:
    """A centroid in scaled space (z-scores, CLUSTER_FEATURES order) as name_for() reads it."""
    return dict(zip(features.CLUSTER_FEATURES, map(float, center)))


def named_segments(centers) -> int:
    """How many different name_for() rules the centroids fit."""
    return len({name_for(z_profile(c)) for c in centers})


def match_ids(new_scaled: np.ndarray, previous: dict | None, mean: np.ndarray, std: np.ndarray,
              value: np.ndarray) -> tuple[list[int], dict]:
    """Stable segment ids for this run's clusters (index = K-Means label).

    previous: the last run's segments.json ({"features": [...], "segments": [{"segment_id",
    "centroid_log"}]}) or None. Without one, ids 1..k go by descending `value` (monetary centroid).
    """
    from scipy.optimize import linear_sum_assignment

    k = len(new_scaled)
    info: dict = {"matched": 0, "new_ids": [], "retired_ids": [], "mean_shift": None}
    if not previous or previous.get("features") != list(features.CLUSTER_FEATURES) or not previous.get("segments"):
        order = np.argsort(-value, kind="stable")
        ids = [0] * k
        for rank, label in enumerate(order, 1):
            ids[label] = rank
        info["new_ids"] = sorted(ids)
        return ids, info
    prev_ids = [s["segment_id"] for s in previous["segments"]]
    prev_scaled = (np.array([s["centroid_log"] for s in previous["segments"]]) - mean) / std
    dist = np.linalg.norm(new_scaled[:, None, :] - prev_scaled[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(dist)
    ids: list[int | None] = [None] * k
    for r, c in zip(rows, cols):
        ids[r] = prev_ids[c]
    next_id = max(prev_ids) + 1
    for label in np.argsort(-value, kind="stable"):
        if ids[label] is None:
            ids[label] = next_id
            info["new_ids"].append(next_id)
            next_id += 1
    info["matched"] = len(rows)
    info["retired_ids"] = sorted(set(prev_ids) - set(ids))
    info["mean_shift"] = round(float(dist[rows, cols].mean()), 4)
    return ids, info  # type: ignore[return-value]


@dataclass
class Config:
    k_min: int = 3
    k_max: int = 8
    seed: int = 42
    n_init: int = 4                           # K-Means starts per k; the lowest cost wins
    max_iter: int = 50
    tol: float = 1e-5
    silhouette_tolerance: float = 0.1           # pick_k: candidates within this of the best silhouette
    snapshot_date: str | None = None          # default: the newest snapshot_date in the table
    ground_truth: str | None = None           # churn_ground_truth.csv (customer_id, churned, churn_date)
    sklearn_sample: int = 10_000              # rows for the scikit-learn comparison (0 = skip)
    search_sample: int = 50_000               # k search on a sample of about this many rows (0 = all rows)
    run_id: str | None = None
    previous: str | None = "latest"           # "latest", a run id, or None (fresh ids)
    write: bool = True                        # write Iceberg tables and MinIO artifacts
    extra: dict = field(default_factory=dict)


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")[:-4] + "-" + uuid.uuid4().hex[:4]


# --- MinIO artifacts -------------------------------------------------------------------------------

def _put_json(client, bucket: str, key: str, obj) -> None:
    body = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    client.put_object(bucket, key, io.BytesIO(body), len(body), content_type="application/json")


def get_json(key: str):
    from minio.error import S3Error

    s = lake.settings()
    try:
        resp = lake.minio(s).get_object(s.minio_bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket"):
            return None
        raise
    try:
        return json.loads(resp.read())
    finally:
        resp.close()
        resp.release_conn()


def previous_state(previous: str | None) -> dict | None:
    if not previous:
        return None
    if previous == "latest":
        pointer = get_json(f"{lake.MODELS_PREFIX}/latest.json")
        return pointer and get_json(f"{lake.MODELS_PREFIX}/{pointer['run_id']}/segments.json")
    return get_json(f"{lake.MODELS_PREFIX}/{previous}/segments.json")


def upload_dir(local: Path, prefix: str) -> int:
    s = lake.settings()
    client, n = lake.minio(s), 0
    for path in sorted(local.rglob("*")):
        if path.is_file() and not path.name.endswith(".crc"):
            client.fput_object(s.minio_bucket, f"{prefix}/{path.relative_to(local).as_posix()}", str(path))
            n += 1
    return n


def download_model(run_id: str, dest: Path):
    """Fetch a run's PipelineModel from MinIO into `dest`; load it with PipelineModel.load(str(dest))."""
    s = lake.settings()
    client, prefix = lake.minio(s), f"{lake.MODELS_PREFIX}/{run_id}/model/"
    n = 0
    for obj in client.list_objects(s.minio_bucket, prefix=prefix, recursive=True):
        client.fget_object(s.minio_bucket, obj.object_name, str(dest / obj.object_name[len(prefix):]))
        n += 1
    if not n:
        raise FileNotFoundError(f"no model under s3://{s.minio_bucket}/{prefix}")
    return dest


# --- the job -----------------------------------------------------------------------------------------

def _prep_pipeline():
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Imputer, SQLTransformer, StandardScaler, VectorAssembler

    def expr(c: str) -> str:
        x = f"CAST({c} AS DOUBLE)"
        if c in features.CAPS:
            x = f"LEAST({x}, {float(features.CAPS[c])})"
        if c in features.BUYERS_ONLY:
            x = f"CASE WHEN frequency > 0 THEN {x} END"
        # not GREATEST(x, 0): Spark's GREATEST skips NULLs, so a NULL (never logged in, no order) became 0
        # ("today") and never reached the Imputer
        return f"log1p(IF({x} < 0, 0.0, {x})) AS f_{c}" if c in features.LOG_FEATURES else f"{x} AS f_{c}"

    exprs = ", ".join(expr(c) for c in features.CLUSTER_FEATURES)
    f_cols = [f"f_{c}" for c in features.CLUSTER_FEATURES]
    i_cols = [f"i_{c}" for c in features.CLUSTER_FEATURES]
    return Pipeline(stages=[
        SQLTransformer(statement=f"SELECT *, {exprs} FROM __THIS__"),
        Imputer(strategy="median", inputCols=f_cols, outputCols=i_cols),
        VectorAssembler(inputCols=i_cols, outputCol="raw_features"),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True, withStd=True),
    ])


def load_features(spark, snapshot_date: str | None = None):
    from pyspark.sql import functions as F

    lake.require_table(lake.FEATURES_TABLE, "`python -m spark_ml export` (or `make batch`)")
    df = spark.table(f"{lake.CATALOG}.{lake.FEATURES_TABLE}")
    if snapshot_date is None:
        latest = df.agg(F.max("snapshot_date")).first()[0]
        if latest is None:
            raise RuntimeError(f"{lake.CATALOG}.{lake.FEATURES_TABLE} is empty; run `python -m spark_ml export` first")
        snapshot_date = latest.isoformat()
    df = df.where(F.col("snapshot_date") == F.lit(snapshot_date).cast("date"))
    cols = list(dict.fromkeys([features.KEY, "snapshot_date", *features.CLUSTER_FEATURES, *features.PROFILE_FEATURES]))
    return in_feature_order(df.select(*cols)), snapshot_date


def in_feature_order(df):
    """`df` as one partition in an order that depends only on the clustered feature values, never on the ids.

    K-Means seeds are drawn row by row (the search's k-means++ over the driver-side matrix in this order;
    before it, Spark's k-means|| partition by partition), the search sample is drawn row by row, and the
    Imputer's quantiles and the scaler's sums follow the partitions too. Partitioned by customer_id, the
    same customers under another id prefix got other seeds, so another k and other segments. Here rows are sorted by a hash of the
    feature values, then by the values themselves (a hash collision, or xxhash64 skipping NULLs, still
    sorts one way); rows that tie are identical points to every stage, so their order changes nothing.

    One partition, because Spark adds up the partitions' sums in the order their tasks finish: with
    several, Spark's K-Means centres and costs differed in the last bits from run to run (so did which of
    the n_init starts won a tie), and the scaler's sums would too. Scaling 8 features is cheap per row."""
    from pyspark.sql import functions as F

    cols = [F.col(c) for c in features.CLUSTER_FEATURES]
    return (df.withColumn("_feature_hash", F.xxhash64(*cols))
            .repartition(1)
            .sortWithinPartitions("_feature_hash", *cols)
            .drop("_feature_hash"))


def features_matrix(X) -> np.ndarray:
    """The scaled `features` of X's rows as a float64 matrix on the driver, in X's row order (the feature
    order of in_feature_order, so the k search sees the same matrix whatever the ids)."""
    from pyspark.ml.functions import vector_to_array

    x = X.select(vector_to_array("features").alias("x")).toPandas()["x"]
    return np.array(x.tolist(), dtype=np.float64).reshape(len(x), len(features.CLUSTER_FEATURES))


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Spark's ClusteringEvaluator silhouette (squaredEuclidean) in numpy, by the same closed form: a point's
    mean squared distance to a cluster is |x|² - 2 x·sum_c/n_c + sumsq_c/n_c; its own cluster's is rescaled
    by n/(n-1) to leave the point out; a point alone in its cluster scores 0 (test_silhouette_equals_sparks)."""
    k = int(labels.max()) + 1
    n_c = np.bincount(labels, minlength=k).astype(np.float64)
    present = n_c > 0
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    sq = np.einsum("ij,ij->i", x, x)
    sumsq = np.bincount(labels, weights=sq, minlength=k)
    safe = np.where(present, n_c, 1.0)
    avg = sq[:, None] - 2 * x @ (sums / safe[:, None]).T + (sumsq / safe)[None, :]
    rows = np.arange(len(x))
    own_n = n_c[labels]
    a = avg[rows, labels] * own_n / np.where(own_n > 1, own_n - 1, 1.0)
    others = np.where(present[None, :], avg, np.inf)
    others[rows, labels] = np.inf
    b = others.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(a < b, 1 - a / b, np.where(a > b, b / a - 1, 0.0))
    return float(np.where(own_n > 1, s, 0.0).mean())


def search_k(x: np.ndarray, cfg: Config) -> tuple[int, list[dict], dict]:
    """For each k: scikit-learn's KMeans (k-means++, best of n_init starts, seeded) on the driver-side matrix,
    and Spark's silhouette of it. Returns (pick_k's k, the curve, {k: fitted sklearn KMeans}).

    On the driver, not as Spark jobs: the search is at most `search_sample` rows x 8 features (a few MB),
    and as Spark jobs it was k x n_init fits of dozens of tiny one-task jobs each, 25-28 s of per-job
    latency on the demo's 386 customers for milliseconds of arithmetic. One thread (threadpoolctl), so no
    sum depends on how OpenMP splits the rows: equal matrices give bit-equal results."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    curve, models = [], {}
    with threadpool_limits(limits=1):
        for k in range(cfg.k_min, cfg.k_max + 1):
            t0 = time.perf_counter()
            model = KMeans(n_clusters=k, n_init=cfg.n_init, random_state=cfg.seed, max_iter=cfg.max_iter,
                           tol=cfg.tol).fit(x)
            fit_s = time.perf_counter() - t0
            models[k] = model
            curve.append({"k": k, "silhouette": round(silhouette(x, model.labels_), 5),
                          "training_cost": round(float(model.inertia_), 3), "iterations": int(model.n_iter_),
                          "named_segments": named_segments(model.cluster_centers_),
                          "fit_seconds": round(fit_s, 3), "seconds": round(time.perf_counter() - t0, 3)})
    return pick_k(curve, cfg.silhouette_tolerance), curve, models


def spark_kmeans_model(spark, centers: np.ndarray, seed: int):
    """A Spark KMeansModel with exactly these centres, in this order, for the PipelineModel that is saved and
    that scores every customer. Spark ML has no constructor for one, so it is fitted on the k centres
    themselves: random initialisation draws all k rows (they are distinct), each row is its own nearest
    centre, and the mean of one vector is that vector, so the centres come back bit for bit (checked).
    Returns (model, order): the model's cluster i has centre centers[order[i]]."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.linalg import Vectors

    rows = [(Vectors.dense([float(v) for v in c]),) for c in centers]
    model = KMeans(k=len(centers), initMode="random", maxIter=1, seed=seed, featuresCol="features",
                   predictionCol="cluster").fit(spark.createDataFrame(rows, ["features"]))
    got = np.array([np.asarray(c) for c in model.clusterCenters()])
    order = [next((i for i, c in enumerate(centers) if np.array_equal(g, c)), None) for g in got]
    if None in order or sorted(order) != list(range(len(centers))):
        raise RuntimeError(f"Spark's KMeans did not keep the {len(centers)} chosen centres")
    return model, order


def pick_k(curve: list[dict], tolerance: float) -> int:
    """The k of a segmentation people act on.

    Customer behaviour is a continuum, not a set of well-separated blobs, so the silhouette (and the
    Calinski-Harabasz index alike) is usually best at the coarsest split: on the demo population k=3,
    which leaves the lapsed customers inside "occasional". A segmentation exists to be acted on, and
    each naming rule of name_for() stands for a different action (reward, onboard, win back, ...).
    So, among the k whose silhouette is within `tolerance` of the best (clearly weaker structure is
    excluded): the largest k whose segments all fit different naming rules (two segments of one rule
    are one audience split in two); without one, the k with the most different rules. Ties go to the
    better silhouette, then the smaller k."""
    top = max(row["silhouette"] for row in curve)
    near = [row for row in curve if row["silhouette"] >= top - tolerance]
    return max(near, key=lambda row: (row["named_segments"] == row["k"], row["named_segments"],
                                      row["silhouette"], -row["k"]))["k"]


def choose_k(X, n: int, cfg: Config) -> tuple[int, list[dict], object, dict]:
    """k search (search_k, on the driver) and the Spark model that segments every row: the chosen k's best
    start, its centres unchanged (spark_kmeans_model). Above `search_sample` rows the search runs on a
    seeded sample of the fixed-order rows, without a refit on all rows (n_init more starts over 1M
    customers took 150+ s, for centres a 50k random sample already pins down: thousands of rows per
    segment; the test compares both); the model's silhouette and cluster sizes are then measured on every
    row by Spark. Returns (k, curve, model, search info with `cluster_sizes` over all n rows, in the
    model's cluster order)."""
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.sql import functions as F

    sampled = bool(cfg.search_sample) and n > cfg.search_sample
    x = features_matrix(X.sample(False, cfg.search_sample / n, cfg.seed) if sampled else X)
    k, curve, models = search_k(x, cfg)
    best = models[k]
    model, order = spark_kmeans_model(X.sparkSession, best.cluster_centers_, cfg.seed)
    info = {"rows": len(x), "sampled": sampled, "training_cost": round(float(best.inertia_), 3)}  # on the searched rows
    if not sampled:   # the search saw every row: its sizes and silhouette are the model's
        sizes = np.bincount(best.labels_, minlength=k)
        chosen = next(row for row in curve if row["k"] == k)
        return k, curve, model, info | {"silhouette": chosen["silhouette"], "cluster_sizes": [int(sizes[i]) for i in order]}
    t0 = time.perf_counter()
    assigned = model.transform(X).cache()
    by_cluster = dict(assigned.groupBy("cluster").agg(F.count("*")).collect())
    sil = ClusteringEvaluator(featuresCol="features", predictionCol="cluster", metricName="silhouette",
                              distanceMeasure="squaredEuclidean").evaluate(assigned)
    assigned.unpersist()
    return k, curve, model, info | {"silhouette": round(sil, 5), "cluster_sizes": [int(by_cluster.get(i, 0)) for i in range(k)],
                                    "assign_seconds": round(time.perf_counter() - t0, 3)}


def sklearn_comparison(X, k: int, seed: int, sample: int, spark_model) -> dict:
    """An independent scikit-learn KMeans (same k) on a sample, silhouettes on that same sample."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    n = X.count()
    frac = min(1.0, sample / max(n, 1) * 1.1)
    rows = (spark_model.transform(X).sample(False, frac, seed).limit(sample)
            .select(vector_to_array("features").alias("x"), F.col("cluster")).toPandas())
    data = np.array(rows["x"].tolist())
    spark_labels = rows["cluster"].to_numpy()
    t0 = time.perf_counter()
    sk = SkKMeans(n_clusters=k, random_state=seed, n_init=4).fit(data)
    sk_s = time.perf_counter() - t0
    return {"sample_rows": len(data), "k": k,
            "silhouette_spark": round(float(silhouette_score(data, spark_labels)), 5),
            "silhouette_sklearn": round(float(silhouette_score(data, sk.labels_)), 5),
            "adjusted_rand_index": round(float(adjusted_rand_score(spark_labels, sk.labels_)), 4),
            "sklearn_fit_seconds": round(sk_s, 3)}


def churn_by_segment(spark, scored, ground_truth: str | None) -> dict | None:
    if not ground_truth:
        return None
    path = Path(ground_truth)
    if not path.exists():
        raise FileNotFoundError(f"churn ground truth {path} not found (the simulator writes "
                                f"DATA_DIR/simulator/churn_ground_truth.csv); pass --ground-truth or omit it")
    from pyspark.sql import functions as F

    truth = spark.createDataFrame(features.read_ground_truth(path))
    joined = scored.select("customer_id", "segment_id").join(truth, "customer_id", "left")
    rows = joined.groupBy("segment_id").agg(F.count("*").alias("n"), F.count("churned").alias("known"),
                                            F.sum(F.col("churned").cast("int")).alias("churned")).collect()
    known = sum(r["known"] for r in rows)
    churned = sum(r["churned"] or 0 for r in rows)
    return {"path": str(path), "customers": sum(r["n"] for r in rows), "with_ground_truth": known,
            "overall_rate": round(churned / known, 5) if known else None,
            "by_segment": {int(r["segment_id"]): {"known": r["known"], "churned": int(r["churned"] or 0),
                                                  "rate": round((r["churned"] or 0) / r["known"], 5) if r["known"] else None}
                           for r in rows}}


def profile_value(column: str):
    """What a profile averages: for a BUYERS_ONLY column (days since the last order), buyers only. The
    mart gives a customer without an order their tenure there, which is not a time since an order; a
    segment without a buyer gets NULL (shown empty), not its tenure."""
    from pyspark.sql import functions as F

    if column in features.BUYERS_ONLY:
        return F.when(F.col("frequency") > 0, F.col(column))
    return F.col(column)


def run(spark, cfg: Config) -> dict:
    """Train, name, score, and (cfg.write) persist one segmentation run. Returns its metrics."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    t_start = time.perf_counter()
    run_id = cfg.run_id or new_run_id()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    df, snapshot_date = load_features(spark, cfg.snapshot_date)
    df = df.cache()
    n = df.count()
    if n < cfg.k_max * 10:
        raise RuntimeError(f"only {n} customers for snapshot {snapshot_date}; need at least {cfg.k_max * 10}")
    timings["load_seconds"] = round(time.perf_counter() - t0, 3)
    prep = _prep_pipeline().fit(df)
    X = prep.transform(df).select(features.KEY, "snapshot_date", "features", *features.PROFILE_FEATURES).cache()
    X.count()
    timings["prepare_seconds"] = round(time.perf_counter() - t0, 3)   # load + imputer/scaler fit + transform

    t0 = time.perf_counter()
    k, curve, kmeans, search = choose_k(X, n, cfg)
    timings["k_search_seconds"] = round(time.perf_counter() - t0, 3)

    # Independent of everything below, so run alongside it: the scikit-learn check, and saving + uploading
    # the PipelineModel (metrics.json, written after both, still records them; latest.json still goes last).
    side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="segment-side")

    def timed(key: str, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        timings[key] = round(time.perf_counter() - t, 3)
        return out

    sk_future = side.submit(timed, "sklearn_seconds", sklearn_comparison, X, k, cfg.seed, cfg.sklearn_sample,
                            kmeans) if cfg.sklearn_sample else None
    model_future = (side.submit(timed, "model_save_seconds", save_model, PipelineModel(stages=[*prep.stages, kmeans]),
                                run_id, spark) if cfg.write else None)
    scaler = prep.stages[-1]
    mean, std = np.array(scaler.mean.toArray()), np.array(scaler.std.toArray())
    std = np.where(std == 0, 1.0, std)
    centers = np.array(list(kmeans.clusterCenters()))                 # scaled space (z-scores)
    centroid_log = centers * std + mean                                 # log1p / raw units
    mon = list(features.CLUSTER_FEATURES).index("monetary")
    prev = previous_state(cfg.previous) if cfg.previous else None
    ids, matching = match_ids(centers, prev, mean, std, centers[:, mon])
    z = {ids[i]: z_profile(centers[i]) for i in range(k)}
    sizes = dict(zip(ids, search["cluster_sizes"]))
    names = assign_names(z, sizes)

    # score: cluster → stable id, name, distance to the centroid (scaled space)
    from pyspark.ml.functions import vector_to_array

    label_to_id = F.create_map(*[x for i in range(k) for x in (F.lit(i), F.lit(ids[i]))])
    id_to_name = F.create_map(*[x for sid, nm in names.items() for x in (F.lit(sid), F.lit(nm))])
    centers_col = F.array(*[F.array(*[F.lit(float(v)) for v in c]) for c in centers])
    scored = (kmeans.transform(X)
              .withColumn("x", vector_to_array("features"))
              .withColumn("c", F.element_at(centers_col, F.col("cluster") + 1))
              .withColumn("distance", F.sqrt(F.aggregate(F.zip_with("x", "c", lambda a, b: (a - b) * (a - b)),
                                                         F.lit(0.0), lambda acc, v: acc + v)))
              .withColumn("segment_id", label_to_id[F.col("cluster")].cast("int"))
              .withColumn("segment_name", id_to_name[F.col("segment_id")])
              .drop("x", "c")
              .cache())
    scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    segments = scored.select(
        F.col("customer_id"), F.col("snapshot_date"), F.col("segment_id"), F.col("segment_name"),
        F.col("distance").cast("double"), F.lit(run_id).alias("run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"))

    churn = churn_by_segment(spark, scored, cfg.ground_truth)
    agg = [F.count("*").alias("size"), F.avg("distance").alias("avg_distance")]
    agg += [F.avg(profile_value(c)).cast("double").alias(f"avg_{c}") for c in features.PROFILE_FEATURES]
    prof_rows = scored.groupBy("segment_id", "segment_name").agg(*agg).orderBy("segment_id").collect()
    profiles = []
    for r in prof_rows:
        sid = int(r["segment_id"])
        ch = (churn or {}).get("by_segment", {}).get(sid)
        row = {"run_id": run_id, "snapshot_date": dt.date.fromisoformat(snapshot_date), "segment_id": sid,
               "segment_name": r["segment_name"], "size": int(r["size"]), "share": round(r["size"] / n, 6),
               "avg_distance": float(r["avg_distance"]),
               "churn_rate": ch["rate"] if ch else None, "churned": ch["churned"] if ch else None}
        row.update({f"avg_{c}": (None if r[f"avg_{c}"] is None else float(r[f"avg_{c}"])) for c in features.PROFILE_FEATURES})
        row["created_at"] = scored_at
        profiles.append(row)
    prof_schema = T.StructType(
        [T.StructField("run_id", T.StringType(), False), T.StructField("snapshot_date", T.DateType(), False),
         T.StructField("segment_id", T.IntegerType(), False), T.StructField("segment_name", T.StringType(), False),
         T.StructField("size", T.LongType(), False), T.StructField("share", T.DoubleType(), False),
         T.StructField("avg_distance", T.DoubleType(), True), T.StructField("churn_rate", T.DoubleType(), True),
         T.StructField("churned", T.LongType(), True)]
        + [T.StructField(f"avg_{c}", T.DoubleType(), True) for c in features.PROFILE_FEATURES]
        + [T.StructField("created_at", T.TimestampType(), False)])
    profiles_df = spark.createDataFrame(profiles, prof_schema)

    t0 = time.perf_counter()
    sk = sk_future.result() if sk_future else None
    timings.setdefault("sklearn_seconds", 0.0)
    timings["sklearn_wait_seconds"] = round(time.perf_counter() - t0, 3)   # what it still cost after overlapping

    metrics = {
        "run_id": run_id, "snapshot_date": snapshot_date, "customers": n, "k": k,
        "k_range": [cfg.k_min, cfg.k_max], "silhouette": search["silhouette"], "training_cost": search["training_cost"],
        "elbow_curve": curve, "k_search": search, "seed": cfg.seed, "features": list(features.CLUSTER_FEATURES),
        "log_features": sorted(features.LOG_FEATURES & set(features.CLUSTER_FEATURES)),
        "segments": [{"segment_id": p["segment_id"], "segment_name": p["segment_name"], "size": p["size"],
                      "share": p["share"], "churn_rate": p["churn_rate"]} for p in profiles],
        "id_matching": {**matching, "previous_run_id": (prev or {}).get("run_id")},
        "sklearn": sk, "churn": churn, "timings": timings,
    }
    if churn and churn["overall_rate"]:
        overall = churn["overall_rate"]
        metrics["churn_lift"] = {p["segment_name"]: round(p["churn_rate"] / overall, 3)
                                 for p in profiles if p["churn_rate"] is not None}

    state = {"run_id": run_id, "features": list(features.CLUSTER_FEATURES), "k": k,
             "scaler_mean": mean.tolist(), "scaler_std": std.tolist(),
             "segments": [{"segment_id": ids[i], "segment_name": names[ids[i]], "centroid_log": centroid_log[i].tolist(),
                           "centroid_scaled": centers[i].tolist()} for i in range(k)]}

    if cfg.write:
        t0 = time.perf_counter()
        metrics["iceberg"] = write_iceberg(spark, segments, profiles_df, run_id)
        timings["iceberg_write_seconds"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        uri, files = model_future.result()
        metrics["model_uri"] = save_artifacts(uri, files, metrics, state, run_id)
        timings["artifacts_seconds"] = round(time.perf_counter() - t0, 3)   # after the overlapped model save
    side.shutdown()
    timings["total_seconds"] = round(time.perf_counter() - t_start, 3)
    metrics["_scored"] = scored  # for callers in the same process (tests, benchmark); not serialised
    for frame in (df, X):
        frame.unpersist()
    return metrics


SEGMENTS_DDL = """CREATE TABLE IF NOT EXISTS {t} (
  customer_id STRING NOT NULL, snapshot_date DATE NOT NULL, segment_id INT NOT NULL, segment_name STRING NOT NULL,
  distance DOUBLE, run_id STRING NOT NULL, scored_at TIMESTAMP NOT NULL) USING iceberg
  TBLPROPERTIES ('write.parquet.compression-codec' = 'zstd', 'format-version' = '2')"""


def write_iceberg(spark, segments, profiles_df, run_id: str) -> dict:
    """Full overwrite of both tables: one snapshot each, tagged with the run id."""
    from pyspark.sql import functions as F

    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {lake.CATALOG}.{lake.SEGMENTS_TABLE.split('.')[0]}")
    seg_t, prof_t = f"{lake.CATALOG}.{lake.SEGMENTS_TABLE}", f"{lake.CATALOG}.{lake.PROFILES_TABLE}"
    spark.sql(SEGMENTS_DDL.format(t=seg_t))
    if not spark.catalog.tableExists(prof_t):
        profiles_df.limit(0).writeTo(prof_t).using("iceberg").tableProperty("format-version", "2").create()
    out = {}
    for table, frame in ((seg_t, segments), (prof_t, profiles_df)):
        frame.writeTo(table).option("snapshot-property.run-id", run_id).overwrite(F.lit(True))
        snap = spark.sql(f"SELECT snapshot_id, summary FROM {table}.snapshots ORDER BY committed_at DESC LIMIT 1").first()
        assert snap["summary"].get("run-id") == run_id, f"{table}: the newest snapshot is not run {run_id}"
        out[table] = {"snapshot_id": snap["snapshot_id"], "rows": int(snap["summary"].get("total-records", -1))}
    return out


def save_model(model, run_id: str, spark) -> tuple[str, int]:
    """The PipelineModel, saved locally and uploaded under the run's prefix. Returns (uri, files).

    Under Spark Connect the server writes the files, so `--connect` needs a server on this machine (the
    stack's); pyspark.ml's writer looks the session up per thread there, and this runs in a side thread."""
    if hasattr(type(spark), "_set_default_and_active_session"):    # a Spark Connect session
        type(spark)._set_default_and_active_session(spark)
    s = lake.settings()
    prefix = f"{lake.MODELS_PREFIX}/{run_id}"
    tmp = Path(tempfile.mkdtemp(prefix="segmentation-", dir=lake.data_dir()))
    try:
        model.write().overwrite().save(str(tmp / "model"))
        files = upload_dir(tmp / "model", f"{prefix}/model")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"s3://{s.minio_bucket}/{prefix}/model", files


def save_artifacts(uri: str, files: int, metrics: dict, state: dict, run_id: str) -> str:
    """metrics.json, segments.json next to the saved model (save_model); then latest.json → this run."""
    s = lake.settings()
    client, bucket, prefix = lake.minio(s), s.minio_bucket, f"{lake.MODELS_PREFIX}/{run_id}"
    metrics["model_files"] = files
    _put_json(client, bucket, f"{prefix}/metrics.json", {k: v for k, v in metrics.items() if not k.startswith("_")}
              | {"model_uri": uri})
    _put_json(client, bucket, f"{prefix}/segments.json", state)
    _put_json(client, bucket, f"{lake.MODELS_PREFIX}/latest.json", {"run_id": run_id, "model_uri": uri})
    return uri


def summary_table(metrics: dict) -> str:
    lines = [(f"run {metrics['run_id']}: {metrics['customers']:,} customers, snapshot {metrics['snapshot_date']}, "
              f"k={metrics['k']} (silhouette {metrics['silhouette']:.3f})")]
    lines.append("  k  silhouette  training_cost")
    for row in metrics["elbow_curve"]:
        mark = " <" if row["k"] == metrics["k"] else ""
        lines.append(f"  {row['k']}  {row['silhouette']:10.4f}  {row['training_cost']:13.1f}{mark}")
    lines.append("  id  name                   size     share  churn")
    for seg in metrics["segments"]:
        churn = "" if seg["churn_rate"] is None else f"{seg['churn_rate']:.1%}"
        lines.append(f"  {seg['segment_id']:>2}  {seg['segment_name']:<20} {seg['size']:>7,}  {seg['share']:6.1%}  {churn}")
    if metrics.get("churn") and metrics["churn"]["overall_rate"] is not None:   # None: no customer in the ground truth
        lines.append(f"  overall churn rate {metrics['churn']['overall_rate']:.1%}")
    if metrics.get("sklearn"):
        sk = metrics["sklearn"]
        lines.append(f"  scikit-learn on {sk['sample_rows']:,} rows: silhouette spark {sk['silhouette_spark']:.3f} vs "
                     f"sklearn {sk['silhouette_sklearn']:.3f}, ARI {sk['adjusted_rand_index']:.3f}")
    return "\n".join(lines)


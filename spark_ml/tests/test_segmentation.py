"""The segmentation job end to end on generated customers: k search, quality, determinism, stable ids
across a retrain, churn by segment, and exact counts from features to Iceberg to ClickHouse."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from spark_ml import export, features, lake, load, segmentation

pytestmark = pytest.mark.integration

N = 10_000
SNAPSHOT = dt.date(2026, 11, 1)
OTHER_IDS = SNAPSHOT - dt.timedelta(days=1)   # the same customers under other ids (an older snapshot: never "newest")


@pytest.fixture(scope="module")
def truth_path(isolated, tmp_path_factory):
    data, truth = features.synthetic_arrow(N, seed=5, snapshot_date=SNAPSHOT)
    export.export(source="synthetic", data=data)
    path = tmp_path_factory.mktemp("truth") / "churn_ground_truth.csv"
    features.write_ground_truth(truth, path)
    return path


@pytest.fixture(scope="module")
def first(spark, truth_path):
    m = segmentation.run(spark, segmentation.Config(k_min=3, k_max=8, seed=42, ground_truth=str(truth_path),
                                                    sklearn_sample=5_000))
    m["labels"] = m.pop("_scored").select("customer_id", "segment_id").toPandas().set_index("customer_id").segment_id
    return m


def _ch_count(table: str, run_id: str | None = None) -> int:
    where = f" WHERE run_id = '{run_id}'" if run_id else ""
    return int(lake.clickhouse().command(f"SELECT count() FROM {table}{where}"))


def test_k_search_quality_and_sklearn_baseline(first):
    assert 3 <= first["k"] <= 8
    assert [row["k"] for row in first["elbow_curve"]] == list(range(3, 9))
    costs = [row["training_cost"] for row in first["elbow_curve"]]
    assert costs[0] > costs[-1]  # the elbow curve falls with k
    assert first["silhouette"] > 0.35
    sk = first["sklearn"]
    assert sk["k"] == first["k"] and sk["sample_rows"] > 4_000
    assert abs(sk["silhouette_spark"] - sk["silhouette_sklearn"]) < 0.1
    assert sk["adjusted_rand_index"] > 0.3  # k-means optima differ; the silhouettes are what must agree


def test_k_search_on_a_sample_whose_model_segments_every_customer(spark, first):
    """Above Config.search_sample customers the k search runs on a seeded sample (choose_k); the
    chosen k's best start on the sample then segments all rows, measured on all rows. Here: a 3k
    sample of the same 10k customers."""
    df, _ = segmentation.load_features(spark)
    X = segmentation._prep_pipeline().fit(df).transform(df).select("customer_id", "features").cache()
    cfg = segmentation.Config(k_min=3, k_max=8, seed=42, search_sample=3_000)
    k, curve, model, search = segmentation.choose_k(X, N, cfg)
    assert search["sampled"] and 2_500 <= search["rows"] <= 3_500
    assert [row["k"] for row in curve] == list(range(3, 9))
    assert k == segmentation.pick_k(curve, cfg.silhouette_tolerance)
    assert len(model.clusterCenters()) == k
    sizes = model.transform(X).groupBy("cluster").count().toPandas().set_index("cluster")["count"]
    assert search["cluster_sizes"] == [int(sizes.get(i, 0)) for i in range(k)] and sum(search["cluster_sizes"]) == N
    # as good on every row as the search on every row: separation and distinct segments (pick_k's
    # name count can differ by one between a 3k sample and all 10k rows: here k=7 vs k=6)
    full = next(row for row in first["elbow_curve"] if row["k"] == first["k"])
    assert search["silhouette"] >= first["silhouette"] - 0.02
    assert segmentation.named_segments(model.clusterCenters()) >= full["named_segments"] - 1
    X.unpersist()


def test_churn_is_concentrated_in_at_risk_and_hibernating(first):
    churn = first["churn"]
    assert churn["with_ground_truth"] == N
    overall = churn["overall_rate"]
    churny = [s for s in first["segments"] if s["segment_name"].split(" ")[0] in ("at", "hibernating")]
    assert churny, f"no at-risk/hibernating segment among {[s['segment_name'] for s in first['segments']]}"
    for seg in churny:
        assert seg["churn_rate"] >= 2 * overall, (seg, overall)
    best = [s for s in first["segments"] if s["segment_name"] in ("champions", "loyal")]
    assert best and all(s["churn_rate"] < overall for s in best)


def test_equal_features_give_equal_segments_whatever_the_ids(spark, first):
    """The same customers under other ids (another prefix, so other hash partitions and another sort order
    of the ids) get the same k, the same segments with the same names and sizes, and each customer the
    same segment: the K-Means input is partitioned and ordered by the feature values
    (segmentation.in_feature_order), never by customer_id."""
    import pyarrow as pa

    data, _ = features.synthetic_arrow(N, seed=5, snapshot_date=OTHER_IDS)
    ids = data.column("customer_id").to_pylist()
    renamed = {c: f"shop2-{c[::-1]}" for c in ids}
    data = data.set_column(data.schema.get_field_index("customer_id"), "customer_id",
                           pa.array([renamed[c] for c in ids]))
    export.export(source="synthetic, other ids", data=data)
    other = segmentation.run(spark, segmentation.Config(k_min=3, k_max=8, seed=42, snapshot_date=OTHER_IDS.isoformat(),
                                                        previous=None, write=False, sklearn_sample=0))
    labels = other.pop("_scored").select("customer_id", "segment_id").toPandas().set_index("customer_id").segment_id
    assert other["k"] == first["k"]
    assert other["elbow_curve"] == [{**row, **{t: other_row[t] for t in ("fit_seconds", "seconds")}}
                                    for row, other_row in zip(first["elbow_curve"], other["elbow_curve"])]
    assert ([(s["segment_id"], s["segment_name"], s["size"]) for s in other["segments"]]
            == [(s["segment_id"], s["segment_name"], s["size"]) for s in first["segments"]])
    assert labels.loc[[renamed[c] for c in first["labels"].index]].tolist() == first["labels"].tolist()


def test_profiles_average_days_since_last_order_over_buyers_only(first):
    """customer_features gives a customer without an order their tenure as recency_days; a segment's
    avg_recency_days is the mean of its buyers only (NULL without one), not a mix of the two."""
    feats, _ = features.synthetic(N, seed=5, snapshot_date=SNAPSHOT)
    feats = feats.set_index("customer_id").join(first["labels"].rename("segment_id"))
    profiles = (lake.catalog().load_table(lake.PROFILES_TABLE).scan(row_filter=f"run_id = '{first['run_id']}'")
                .to_arrow().to_pandas().set_index("segment_id"))
    buyers = feats[feats.frequency > 0].groupby("segment_id").recency_days.mean()
    assert len(profiles) == first["k"] and (feats.frequency == 0).any()
    for sid, row in profiles.iterrows():
        if sid in buyers.index:
            assert row.avg_recency_days == pytest.approx(buyers[sid]), sid
        else:
            assert pd.isna(row.avg_recency_days), sid
    assert profiles.avg_tenure_days.tolist() == pytest.approx(
        feats.groupby("segment_id").tenure_days.mean().loc[profiles.index].tolist())


def test_exact_counts_from_features_to_iceberg_to_clickhouse(first):
    run_id = first["run_id"]
    cat = lake.catalog()
    feats = cat.load_table(lake.FEATURES_TABLE).scan(row_filter=f"snapshot_date = '{SNAPSHOT}'").to_arrow()
    segs = cat.load_table(lake.SEGMENTS_TABLE).scan().to_arrow()
    profs = cat.load_table(lake.PROFILES_TABLE).scan().to_arrow().to_pandas()
    assert feats.num_rows == segs.num_rows == first["customers"] == N
    assert set(segs.column("customer_id").to_pylist()) == set(feats.column("customer_id").to_pylist())
    assert profs["size"].sum() == N and len(profs) == first["k"]
    out = load.load(run_id=run_id)
    assert out["customer_segments"] == N
    assert _ch_count(load.SEGMENTS, run_id) == N
    db = load.SEGMENTS.split(".")[0]
    assert _ch_count(f"{db}.customer_segments_latest") == N
    assert _ch_count(f"{db}.segment_profiles_latest") == first["k"]
    load.load(run_id=run_id)  # a reload replaces the run's partition: still exactly N
    assert _ch_count(load.SEGMENTS) == N
    ch = lake.clickhouse()
    by_segment = dict(ch.query(f"SELECT segment_id, count() FROM {db}.customer_segments_latest GROUP BY segment_id").result_rows)
    assert by_segment == dict(zip(profs.segment_id, profs["size"]))
    # model and metrics are versioned in MinIO under the run id
    assert segmentation.get_json(f"{lake.MODELS_PREFIX}/{run_id}/metrics.json")["k"] == first["k"]
    assert segmentation.get_json(f"{lake.MODELS_PREFIX}/latest.json")["run_id"] == run_id



def test_model_in_minio_reproduces_the_labels(spark, first, tmp_path):
    from pyspark.ml import PipelineModel

    model = PipelineModel.load(str(segmentation.download_model(first["run_id"], tmp_path / "model")))
    feats, _ = segmentation.load_features(spark, SNAPSHOT.isoformat())
    clusters = model.transform(feats.limit(500)).select("customer_id", "cluster").toPandas()
    state = segmentation.get_json(f"{lake.MODELS_PREFIX}/{first['run_id']}/segments.json")
    assert len(state["segments"]) == first["k"] and len(clusters) == 500
    # same cluster ⇔ same segment id: the saved model partitions customers exactly like the run did
    pairs = set(zip(clusters.cluster, first["labels"].loc[clusters.customer_id]))
    assert len(pairs) == len({c for c, _ in pairs}) == len({s for _, s in pairs})


def test_rerun_is_identical_and_retrain_keeps_segment_ids(spark, first, truth_path):
    k = first["k"]
    again = segmentation.run(spark, segmentation.Config(k_min=k, k_max=k, seed=42, ground_truth=str(truth_path),
                                                        sklearn_sample=0))
    labels = again.pop("_scored").select("customer_id", "segment_id").toPandas().set_index("customer_id").segment_id
    assert labels.sort_index().equals(first["labels"].sort_index())  # same data + seed → same labels, same ids
    assert again["id_matching"]["mean_shift"] == pytest.approx(0, abs=1e-6)

    # time travel: the first run is still in Iceberg
    table = lake.catalog().load_table(lake.SEGMENTS_TABLE)
    snap = next(s for s in table.snapshots() if s.summary.get("run-id") == first["run_id"])
    old = table.scan(snapshot_id=snap.snapshot_id).to_arrow()
    assert old.num_rows == N and set(old.column("run_id").to_pylist()) == {first["run_id"]}

    # next snapshot: the same customers, behaviour drifted a little → ids keep their meaning
    drifted, _ = features.synthetic_arrow(N, seed=5, snapshot_date=SNAPSHOT + dt.timedelta(days=1), drift=0.05)
    export.export(source="synthetic drifted", data=drifted)
    retrain = segmentation.run(spark, segmentation.Config(k_min=k, k_max=k, seed=42, sklearn_sample=0))
    new = retrain.pop("_scored").select("customer_id", "segment_id").toPandas().set_index("customer_id").segment_id
    assert retrain["id_matching"]["previous_run_id"] == again["run_id"]
    assert sorted(new.unique()) == sorted(first["labels"].unique())
    both = pd.concat([first["labels"], new], axis=1, keys=["old", "new"])
    agree = (both.old == both.new).mean()
    assert agree > 0.75, f"only {agree:.1%} of customers kept their segment id after a small drift"
    # every old segment's customers mostly land in the segment with the same id
    assert (both.groupby("old").new.agg(lambda s: s.mode()[0]).to_dict()
            == {i: i for i in first["labels"].unique()})
    old_names = {s["segment_id"]: s["segment_name"] for s in first["segments"]}
    new_names = {s["segment_id"]: s["segment_name"] for s in retrain["segments"]}
    assert sum(old_names[i] == new_names[i] for i in old_names) >= k - 1

    # ClickHouse: loading the new run switches the latest views to it, the old run stays queryable
    load.load(run_id=retrain["run_id"])
    db = load.SEGMENTS.split(".")[0]
    assert _ch_count(f"{db}.customer_segments_latest") == N
    latest = lake.clickhouse().command(f"SELECT DISTINCT run_id FROM {db}.customer_segments_latest")
    assert latest == retrain["run_id"]
    assert _ch_count(load.SEGMENTS, first["run_id"]) == N


@pytest.fixture(scope="module")
def demo_sized(spark, truth_path):
    """A demo-sized population (386 customers) prepared as the job prepares it: (X, matrix)."""
    small = SNAPSHOT - dt.timedelta(days=2)                # older than SNAPSHOT: never "newest"
    data, _ = features.synthetic_arrow(386, seed=11, snapshot_date=small)
    export.export(source="synthetic, demo size", data=data)
    df, _ = segmentation.load_features(spark, small.isoformat())
    X = segmentation._prep_pipeline().fit(df).transform(df).select("customer_id", "features").cache()
    yield X, segmentation.features_matrix(X)
    X.unpersist()


def test_silhouette_equals_sparks(spark, demo_sized):
    """segmentation.silhouette (numpy, used by the k search) is Spark's ClusteringEvaluator silhouette
    (squaredEuclidean), including a cluster of one point (which scores 0)."""
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.ml.linalg import Vectors

    _, x = demo_sized
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster", metricName="silhouette",
                                    distanceMeasure="squaredEuclidean")
    _, _, models = segmentation.search_k(x, segmentation.Config(k_min=3, k_max=5, seed=42))
    singleton = models[3].labels_.copy()
    singleton[0] = 3                                      # a fourth cluster of one point
    for labels in (models[3].labels_, models[5].labels_, singleton):
        frame = spark.createDataFrame([(Vectors.dense(row.tolist()), int(c)) for row, c in zip(x, labels)],
                                      ["features", "cluster"])
        assert segmentation.silhouette(x, labels) == pytest.approx(evaluator.evaluate(frame), abs=1e-9)


def test_spark_model_has_the_searchs_centres_and_labels(spark, demo_sized):
    """choose_k's Spark model (the one saved and used to score) has the search's chosen centres bit for
    bit and assigns every customer as the search did; the search is repeatable to the last bit."""
    X, x = demo_sized
    cfg = segmentation.Config(k_min=3, k_max=8, seed=42)
    k, curve, model, search = segmentation.choose_k(X, 386, cfg)
    assert not search["sampled"] and search["rows"] == 386 and sum(search["cluster_sizes"]) == 386
    k2, curve2, models = segmentation.search_k(x, cfg)
    assert (k2, [{c: v for c, v in row.items() if c not in ("fit_seconds", "seconds")} for row in curve2]) == (
        k, [{c: v for c, v in row.items() if c not in ("fit_seconds", "seconds")} for row in curve])
    centers = models[k].cluster_centers_
    spark_centers = [[float(v).hex() for v in c] for c in model.clusterCenters()]
    assert sorted(spark_centers) == sorted([[float(v).hex() for v in c] for c in centers])
    order = [next(i for i, c in enumerate(centers) if [float(v).hex() for v in c] == sc) for sc in spark_centers]
    labels = model.transform(X).select("cluster").toPandas()["cluster"].to_numpy()   # X's row order = x's
    assert [order[c] for c in labels] == models[k].labels_.tolist()
    assert search["cluster_sizes"] == [int((labels == i).sum()) for i in range(k)]

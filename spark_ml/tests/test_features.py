"""The customer_features contract, the synthetic generator, and the pure helpers of segmentation."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spark_ml import features, segmentation

pytestmark = pytest.mark.unit


def test_contract_schema_matches_columns():
    schema = features.arrow_schema()
    assert schema.names == list(features.COLUMN_NAMES)
    assert schema.field("customer_id").type == pa.string() and not schema.field("customer_id").nullable
    assert schema.field("snapshot_date").type == pa.date32()
    assert schema.field("days_since_last_login").nullable
    assert set(features.CLUSTER_FEATURES) <= set(features.COLUMN_NAMES)
    assert set(features.PROFILE_FEATURES) <= set(features.COLUMN_NAMES)
    ddl = features.clickhouse_ddl("db.t")
    assert "`days_since_last_login` Nullable(Int32)" in ddl and "`snapshot_date` Date" in ddl


def test_conform_rejects_what_breaks_the_contract():
    table, _ = features.synthetic_arrow(50, seed=1)
    with pytest.raises(features.ContractError, match="lacks column.*monetary"):
        features.conform(table.drop_columns(["monetary"]), "mart")
    nulls = table.set_column(table.schema.get_field_index("frequency"), "frequency",
                             pa.array([None] * 50, pa.int32()))
    with pytest.raises(features.ContractError, match="frequency has 50 NULL"):
        features.conform(nulls, "mart")
    with pytest.raises(features.ContractError, match="duplicate"):
        features.conform(pa.concat_tables([table, table.slice(0, 3)]), "mart")
    # extra columns are dropped, castable types are cast
    wider = table.append_column("extra", pa.array(range(50))).set_column(
        table.schema.get_field_index("tenure_days"), "tenure_days", table.column("tenure_days").cast(pa.int64()))
    assert features.conform(wider).schema == features.arrow_schema()


def test_synthetic_features_are_consistent_and_deterministic():
    df, truth = features.synthetic(20_000, seed=3)
    again, _ = features.synthetic(20_000, seed=3)
    assert df.equals(again)
    assert df.customer_id.is_unique and len(df) == len(truth) == 20_000
    assert (df.sessions_7d <= df.sessions_30d).all() and (df.sessions_30d <= df.sessions_90d).all()
    assert (df.orders_7d <= df.orders_30d).all() and (df.orders_30d <= df.orders_90d).all()
    assert (df.orders_90d <= df.frequency).all() and (df.recency_days <= df.tenure_days).all()
    assert df.avg_order_value.isna().sum() == (df.frequency == 0).sum()
    # the hidden churn flag follows inactivity: churners are far less active than the rest
    churned = truth.churned.to_numpy()
    assert 0.12 < churned.mean() < 0.35
    assert df.sessions_30d[churned].mean() < 0.5 * df.sessions_30d[~churned].mean()
    assert df.recency_days[churned].mean() > 2 * df.recency_days[~churned].mean()


def test_ground_truth_round_trip(tmp_path):
    _, truth = features.synthetic(100, seed=2)
    path = tmp_path / "churn_ground_truth.csv"
    features.write_ground_truth(truth, path)
    assert path.read_text().splitlines()[0] == "customer_id,churned,churn_date"
    back = features.read_ground_truth(path)
    assert back.churned.tolist() == truth.churned.tolist()


def test_match_ids_recovers_previous_ids_after_a_permutation():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, len(features.CLUSTER_FEATURES))) * 3
    mean, std = np.zeros(centers.shape[1]), np.ones(centers.shape[1])
    ids, info = segmentation.match_ids(centers, None, mean, std, centers[:, 0])
    assert sorted(ids) == [1, 2, 3, 4, 5] and info["matched"] == 0
    previous = {"features": list(features.CLUSTER_FEATURES),
                "segments": [{"segment_id": i, "centroid_log": c.tolist()} for i, c in zip(ids, centers)]}
    perm = [3, 0, 4, 1, 2]
    shifted = centers[perm] + rng.normal(scale=0.05, size=centers.shape)
    new_ids, info = segmentation.match_ids(shifted, previous, mean, std, shifted[:, 0])
    assert new_ids == [ids[p] for p in perm] and info["matched"] == 5
    # one more cluster than before: it gets a fresh id; the others keep theirs
    extra = np.vstack([shifted, centers[:1] + 20])
    more_ids, info = segmentation.match_ids(extra, previous, mean, std, extra[:, 0])
    assert more_ids[:5] == new_ids and more_ids[5] == 6 and info["new_ids"] == [6]


def test_names_follow_centroid_profiles():
    zero = dict.fromkeys(features.CLUSTER_FEATURES, 0.0)
    z = {
        1: {**zero, "frequency": 1.6, "monetary": 1.4, "sessions_30d": 1.8, "recency_days": -1.2},
        2: {**zero, "frequency": 0.7, "monetary": 0.7, "sessions_30d": -0.9, "activity_trend": -1.2},
        3: {**zero, "recency_days": 1.4, "frequency": -1.5, "sessions_30d": -1.2, "days_since_last_login": 1.4},
        4: {**zero, "tenure_days": -1.6, "frequency": -0.8, "monetary": -0.5},
        5: {**zero, "recency_days": 1.3, "frequency": -0.8, "sessions_30d": -1.3, "days_since_last_login": 1.5},
    }
    names = segmentation.assign_names(z, {1: 10, 2: 10, 3: 50, 4: 10, 5: 20})
    # two segments fit "hibernating": the larger keeps the name, the other says how it differs from it
    assert names == {1: "champions", 2: "at risk", 3: "hibernating", 4: "new customers", 5: "hibernating, more orders"}
    # a third one that differs the same way is numbered: names stay unique
    z[6] = {**z[5], "frequency": -0.6}
    names = segmentation.assign_names(z, {1: 10, 2: 10, 3: 50, 4: 10, 5: 20, 6: 5})
    assert names[5] == "hibernating, more orders" and names[6] == "hibernating, more orders 2"
    assert len(set(names.values())) == 6


def test_k_is_the_largest_near_best_silhouette_whose_segments_all_name_apart():
    def curve(*rows):
        return [{"k": k, "silhouette": sil, "named_segments": n} for k, sil, n in rows]

    # the demo population's curve (4 K-Means starts per k): the silhouette is best at k=3, which merges
    # the lapsed customers into "occasional"; k=5 is the largest k within 0.1 whose 5 segments fit 5 rules
    demo = curve((3, 0.48652, 3), (4, 0.44756, 4), (5, 0.43836, 5), (6, 0.45562, 4), (7, 0.45795, 5), (8, 0.45139, 6))
    assert segmentation.pick_k(demo, 0.1) == 5
    # a k more than `tolerance` below the best silhouette is never a candidate
    assert segmentation.pick_k(curve((3, 0.48, 3), (4, 0.37, 4)), 0.1) == 3
    # no k names all its segments apart: the most different names, then the better silhouette
    assert segmentation.pick_k(curve((6, 0.44, 5), (7, 0.43, 6), (8, 0.45, 6)), 0.1) == 8
    assert segmentation.pick_k(curve((5, 0.44, 4), (6, 0.44, 4)), 0.1) == 5

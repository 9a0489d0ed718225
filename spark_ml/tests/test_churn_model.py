"""spark_ml.churn: metrics on hand-computed inputs, calibration, risk bands, splits, the Telco loader, and
the model's cross-validated AUC on Telco (a few seconds; no service needed)."""
from __future__ import annotations

import lzma
import pathlib
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from spark_ml.churn import backtest, metrics, model, telco

pytestmark = pytest.mark.unit

# y = [0, 0, 1, 1] scored [0.1, 0.4, 0.35, 0.8]: 3 of the 4 (churner, non-churner) pairs are ordered right
Y4, P4 = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]


def test_roc_auc_pr_auc_brier_by_hand():
    assert metrics.roc_auc(Y4, P4) == pytest.approx(0.75)
    # by score: 0.8 (churner) precision 1 at recall 1/2, 0.4, then 0.35 (churner) precision 2/3 at recall 1
    assert metrics.pr_auc(Y4, P4) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics.brier(Y4, P4) == pytest.approx((0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4)


def test_ece_by_hand():
    # bins (0.1,0.2]: y 0,1 vs p .12,.18 -> 2·|0.5-0.15|; (0.5,0.6]: |0-.55|; (0.6,0.7]: |1-.62|; (0.9,1]: |1-.95|
    y, p = [0, 1, 0, 1, 1], [0.12, 0.18, 0.55, 0.62, 0.95]
    assert metrics.ece(y, p) == pytest.approx((0.7 + 0.55 + 0.38 + 0.05) / 5)
    # one bin: |mean y - mean p|
    assert metrics.ece([1, 0, 0], [0.9, 0.8, 0.1], bins=1) == pytest.approx(abs(1 / 3 - 0.6))


def test_ece_edges():
    # bins are closed on the right: 0.5 is in (0.4, 0.5], apart from 0.55 (else the gaps would cancel to 0.025)
    assert metrics.ece([1, 0], [0.5, 0.55]) == pytest.approx((0.5 + 0.55) / 2)
    assert metrics.ece([0, 1], [0.0, 1.0]) == 0  # both ends of [0, 1] are in a bin
    assert metrics.ece([1, 0, 0, 0], [0.25] * 4) == pytest.approx(0)  # calibrated within its bin
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.ece([0, 1], [0.2, 1.2])
    with pytest.raises(ValueError, match="one length"):
        metrics.ece([0, 1, 1], [0.2, 0.3])


def test_lift_by_hand_and_edges():
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]  # churn rate 0.2
    p = np.linspace(1, 0, 10)
    assert metrics.lift_at(y, p) == pytest.approx(1 / 0.2)  # top 1 of 10 is a churner
    assert metrics.lift_at(y, p, fraction=1.0) == pytest.approx(1)
    # k = ceil(0.1 · 25) = 3 of 25 with 5 churners: 2/3 of them churn -> (2/3) / 0.2
    y25 = [1, 1, 0] + [1, 1, 1] + [0] * 19
    assert metrics.lift_at(y25, np.linspace(1, 0, 25)) == pytest.approx((2 / 3) / 0.2)
    # 0.07 · 100 is 7.000000000000001 in floating point: still k = 7 (k = 8 would give 7/8 / 0.07)
    assert metrics.lift_at([1] * 7 + [0] * 93, np.linspace(1, 0, 100), fraction=0.07) == pytest.approx(1 / 0.07)


def test_lift_shares_ties_at_the_cut():
    # k = 2: 0.9 (no churn), then one of three tied 0.5s of which one churns -> 1/3 expected churner in 2
    y = [0, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert metrics.lift_at(y, p, fraction=0.2) == pytest.approx((1 / 3 / 2) / 0.2)
    order = np.random.default_rng(3).permutation(10)  # whichever row order: the same lift
    assert metrics.lift_at(np.array(y)[order], np.array(p)[order], fraction=0.2) == pytest.approx((1 / 3 / 2) / 0.2)
    assert metrics.lift_at(y, [0.3] * 10) == pytest.approx(1)  # all tied: no better than random
    with pytest.raises(ValueError, match="positive"):
        metrics.lift_at([0] * 10, p)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        metrics.lift_at(y, p, fraction=0)


def test_calibration_repairs_a_miscalibrated_model():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(30_000, 2)), columns=["a", "b"])
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-(-2.2 + 1.5 * X.a + X.b)))).astype(int)  # ~15% churn
    fit, cal, test = np.split(np.arange(len(X)), [10_000, 20_000])
    # class weights as if churn were 50%: every probability is inflated
    skewed = LogisticRegression(class_weight="balanced").fit(X.iloc[fit], y[fit])
    before = skewed.predict_proba(X.iloc[test])[:, 1]
    after = model.calibrate(skewed, X.iloc[cal], y[cal]).predict_proba(X.iloc[test])[:, 1]
    assert metrics.ece(y[test], before) > 0.15
    assert metrics.ece(y[test], after) < 0.02
    assert metrics.roc_auc(y[test], after) == pytest.approx(metrics.roc_auc(y[test], before), abs=1e-12)
    isotonic = model.calibrate(skewed, X.iloc[cal], y[cal], method="isotonic").predict_proba(X.iloc[test])[:, 1]
    assert metrics.ece(y[test], isotonic) < 0.02


def test_risk_bands_cut_where_documented():
    p = [0.0, 0.0999, 0.1, 0.2999, 0.3, 0.5999, 0.6, 1.0]
    assert list(model.risk_band(p)) == ["low", "low", "medium", "medium", "high", "high", "very high", "very high"]
    assert model.risk_band(p).ordered


def test_stratified_splits_partition_the_rows():
    y = np.array([1] * 30 + [0] * 70)
    splits = backtest.stratified_splits(y, folds=5, seed=1)
    assert sorted(np.concatenate([s.test for s in splits])) == list(range(100))
    for s in splits:
        assert len(set(s.fit) | set(s.calibrate) | set(s.test)) == 100 == len(s.fit) + len(s.calibrate) + len(s.test)
        assert len(s.calibrate) == 16 and y[s.calibrate].sum() == 5 and y[s.test].sum() == 6


def test_loader_refuses_a_file_with_another_hash(tmp_path):
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling this creates `marker`: what a tampered data file could do
        def __reduce__(self):
            return pathlib.Path.touch, (marker,)

    bad = tmp_path / "wa_churn.pkl.compress"
    bad.write_bytes(lzma.compress(pickle.dumps(Payload())))
    with pytest.raises(telco.TelcoDataError) as err:
        telco.load(bad)
    assert "SHA-256" in str(err.value) and "refusing" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
    pd.read_pickle(bad, compression="xz")  # the payload is live: unchecked, it runs
    assert marker.exists()
    with pytest.raises(telco.TelcoDataError, match="cannot read"):
        telco.load(tmp_path / "missing.pkl.compress")


def test_telco_loads_as_published():
    X, y = telco.load()
    assert len(X) == 7043 and y.sum() == 1869  # 26.5% churn
    assert "rownames" not in X and telco.LABEL not in X
    assert set(X.dtypes.astype(str)) <= {"int64", "float64", "category"}


def test_gbt_cross_validated_on_telco():
    X, y = telco.load()
    models = {"gbt": model.gbt(), "tenure": model.single_feature(telco.SINGLE_FEATURE)}
    summary = backtest.backtest(X, y, backtest.stratified_splits(y), models).summary()
    gbt = summary.loc[("gbt", model.CALIBRATION)]
    assert gbt[("roc_auc", "mean")] >= 0.84
    assert gbt[("ece", "mean")] <= 0.05
    assert gbt[("roc_auc", "mean")] > summary.loc[("tenure", model.CALIBRATION), ("roc_auc", "mean")] + 0.05


# ---- explanations (spark_ml.churn.explain, reasons) and money (revenue, campaign)

def _mixed_frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric with missing values, a category, and noise; churn driven by the first two."""
    rng = np.random.default_rng(seed)
    months = rng.integers(1, 72, n).astype(float)
    months[rng.random(n) < 0.05] = np.nan
    contract = pd.Categorical(rng.choice(["Month-to-month", "One year", "Two year"], n))
    logit = 1.5 * (np.asarray(contract) == "Month-to-month") - 0.04 * np.nan_to_num(months, nan=30) + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure": months, "contract": contract, "noise": rng.normal(size=n)}), y


def test_contributions_add_up_to_the_margin_of_the_calibrated_model():
    from spark_ml.churn import explain
    X, y = _mixed_frame()
    fitted = model.gbt().fit(X[:400], y[:400])
    shipped = model.calibrate(fitted, X[400:], y[400:])
    base, phi = explain.contributions(shipped, X)  # explains the margin under the calibration
    assert list(phi.columns) == list(X.columns) and phi.shape == X.shape
    np.testing.assert_allclose(base + phi.sum(axis=1), fitted.decision_function(X), atol=1e-9)
    # the calibrated ranking is the margin's: p(churn) never decreases as the margin grows
    by_margin = np.argsort(fitted.decision_function(X))
    assert np.all(np.diff(shipped.predict_proba(X)[by_margin, 1]) >= 0)


def test_contributions_of_one_split_by_hand():
    from spark_ml.churn import explain
    X, y = _mixed_frame()
    stump = HistGradientBoostingClassifier(max_iter=1, max_leaf_nodes=2, categorical_features="from_dtype",
                                           early_stopping=False).fit(X, y)
    (tree,), = stump._predictors
    root, left, right = tree.nodes[0], tree.nodes[1], tree.nodes[2]
    feature = X.columns[explain._original_columns(stump, X.shape[1])[root["feature_idx"]]]
    mean = (left["count"] * left["value"] + right["count"] * right["value"]) / root["count"]
    base, phi = explain.contributions(stump, X)
    # one split: the split feature takes all of (leaf value − cover-weighted mean), every other feature 0
    leaf = np.where(stump.decision_function(X) == stump._baseline_prediction.ravel()[0] + left["value"],
                    left["value"], right["value"])
    np.testing.assert_allclose(phi[feature], leaf - mean, atol=1e-12)
    assert (phi.drop(columns=feature) == 0).all().all()
    assert base == pytest.approx(stump._baseline_prediction.ravel()[0] + mean)


def test_explain_refuses_other_models():
    from spark_ml.churn import explain
    X, y = _mixed_frame(200)
    with pytest.raises(TypeError):
        explain.contributions(model.logistic().fit(X, y), X)


def test_top_reasons_are_positive_named_and_deterministic():
    from spark_ml.churn import reasons
    X = pd.DataFrame({"contract": pd.Categorical(["Month-to-month", "Two year"]), "tenure": [3, 40],
                      "recency_days": [45, 2], "online_security": ["No", "Yes"]})
    contrib = pd.DataFrame({"contract": [0.8, -0.9], "tenure": [0.5, -0.2],
                            "recency_days": [0.5, 0.3], "online_security": [0.1, -0.1]})
    r = reasons.top_reasons(contrib, X)
    # tenure and recency tie at 0.5: column order decides
    assert r.loc[0, ["reason_1", "reason_2", "reason_3"]].tolist() == [
        "month-to-month contract", "tenure under 6 months", "no order in 45 days"]
    assert r.loc[0, "contribution_1"] == 0.8 and r.loc[0, "n_reasons"] == 3
    # one push toward churn: one reason, the protective features are not listed
    assert r.loc[1, "reason_1"] == "no order in 2 days" and r.loc[1, "n_reasons"] == 1
    assert r.loc[1, "reason_2"] is None and r.loc[1, "reason_3"] is None
    assert r.equals(reasons.top_reasons(contrib, X))


def test_phrases():
    from spark_ml.churn import reasons
    assert reasons.phrase("tenure", 5) == "tenure under 6 months"
    assert reasons.phrase("tenure", 30) == "tenure over 2 years"
    assert reasons.phrase("internet_service", "Fiber optic") == "fiber-optic internet"
    assert reasons.phrase("tech_support", "No") == "no tech support"
    assert reasons.phrase("payment_method", "Electronic check") == "pays by electronic check"
    assert reasons.phrase("senior_citizen", 1) == "senior citizen"
    assert reasons.phrase("total_charges", float("nan")) == "no bill yet"
    assert reasons.phrase("monthly_charges", 95.5) == "monthly charges $90 or more"
    assert reasons.phrase("days_since_last_login", 40) == "no login in 40 days"
    # the platform's point-in-time features (spark_ml.churn.training_set)
    assert reasons.phrase("sessions_30d", 0) == "no visit in the last 30 days"
    assert reasons.phrase("sessions_7d", 3.0) == "3 visits in the last 7 days"
    assert reasons.phrase("sessions_7d", 1.0) == "1 visit in the last 7 days"
    assert reasons.phrase("days_since_last_session", 12.0) == "no visit in 12 days"
    assert reasons.phrase("tier_downgraded_30d", 1.0) == "downgraded in the last 30 days"
    assert reasons.phrase("subscription_tier", "free") == "on the free tier"
    assert reasons.phrase("acquisition_channel", "organic_search") == "came through organic search"
    assert reasons.phrase("activity_trend", 0.3) == "visits falling sharply"
    assert reasons.phrase("avg_order_value", float("nan")) == "no completed order yet"
    assert reasons.phrase("revenue_90d", 120.0) == "$50-200 spent in the last 90 days"
    assert reasons.phrase("some_new_column", 2) == "some new column: 2"  # no phrasing yet: words, not the raw name


def test_telco_explanations():
    from spark_ml.churn import explain, reasons
    X, y = telco.load()
    fitted = model.gbt().fit(X, y)
    base, phi = explain.contributions(fitted, X)
    np.testing.assert_allclose(base + phi.sum(axis=1), fitted.decision_function(X), atol=1e-9)
    r = reasons.top_reasons(phi, X)
    # customer 0: a month-to-month customer in their first month
    assert {r.loc[0, "reason_1"], r.loc[0, "reason_2"]} == {"tenure under 6 months", "month-to-month contract"}
    assert r.reason_1.value_counts().index[0] == "month-to-month contract"
    named = r.filter(like="contribution_").stack()
    assert (named > 0).all()


def test_revenue_at_risk_arithmetic():
    from spark_ml.churn import revenue
    value = revenue.from_monthly([70.0, 20.0])
    np.testing.assert_allclose(value, [840.0, 240.0])
    np.testing.assert_allclose(revenue.at_risk([0.5, 0.1], value), [420.0, 24.0])
    # 3 orders of 50 in 90 days = 1.0 order per 30.4375 days ... over 12 months
    np.testing.assert_allclose(revenue.from_orders([50.0, np.nan], [3, 0]), [50 * 3 / 90 * 365.25, 0.0])
    with pytest.raises(ValueError):
        revenue.at_risk([1.2], [10.0])


def test_campaign_by_hand():
    from spark_ml.churn import campaign
    p = np.array([0.9, 0.5, 0.2, 0.8, 0.05])
    value = np.array([100.0, 400.0, 1000.0, 50.0, 100.0])
    # at risk 90, 200, 200, 40, 5; × 0.5 − 10 = 35, 90, 90, 10, −7.5
    c = campaign.simulate(p, value, budget=25, cost=10, effectiveness=0.5)
    assert c.contacted.tolist() == [1, 2]  # two contacts affordable; the tie keeps row order
    assert c.baseline_loss == pytest.approx(535)
    assert c.churners_prevented == pytest.approx((0.5 + 0.2) * 0.5)
    assert c.revenue_saved == pytest.approx(200) and c.cost == 20 and c.net == pytest.approx(180)
    assert c.roi == pytest.approx(9.0)
    # a big budget still skips the customer whose saving is negative
    assert campaign.simulate(p, value, budget=1e6, cost=10, effectiveness=0.5).contacted.tolist() == [1, 2, 0, 3]
    nothing = campaign.simulate(p, value, budget=5, cost=10, effectiveness=0.5)
    assert nothing.contacts == 0 and nothing.roi is None and nothing.baseline_loss == pytest.approx(535)


def test_campaign_is_optimal_within_budget():
    import itertools

    from spark_ml.churn import campaign
    rng = np.random.default_rng(3)
    for _ in range(20):
        p, value = rng.random(8), rng.uniform(0, 500, 8)
        budget, cost = rng.uniform(0, 100), rng.uniform(1, 30)
        c = campaign.simulate(p, value, budget=budget, cost=cost, effectiveness=0.3)
        assert c.cost <= budget + 1e-9
        best = max(sum(p[i] * value[i] * 0.3 - cost for i in s)
                   for r in range(9) for s in itertools.combinations(range(8), r) if r * cost <= budget)
        assert c.net == pytest.approx(best)


def test_promotion_gate_needs_ece_within_bound_and_auc_not_below_the_champion():
    from spark_ml.churn import registry

    assert registry.gate(0.70, 0.04, None) == registry.Decision(
        True, "promoted: backtest AUC 0.7000 (no champion yet), ECE 0.0400 <= 0.05")
    assert registry.gate(0.83, 0.03, 0.83).promote  # equal AUC is "not below"
    assert registry.gate(0.829, 0.03, 0.83) == registry.Decision(
        False, "rejected: backtest AUC 0.8290 < champion's 0.8300")
    assert registry.gate(0.95, 0.051, None) == registry.Decision(False, "rejected: backtest ECE 0.0510 > 0.05")
    assert not registry.gate(0.95, float("nan"), None).promote


def test_time_splits_fit_before_calibration_before_test():
    from spark_ml.churn import training_set

    days = pd.to_datetime(pd.Series(np.repeat(pd.date_range("2026-01-01", periods=10), 3)))
    splits = training_set.rolling_splits(days)
    assert len(splits) == 3  # 5 blocks of 2 days: test blocks 3, 4, 5
    for split in splits:
        assert days[split.fit].max() < days[split.calibrate].min()
        assert days[split.calibrate].max() < days[split.test].min()
    assert [days[s.test].min().day for s in splits] == [5, 7, 9]
    fit, cal = training_set.final_split(days)
    assert days[fit].max() < days[cal].min() and days[cal].min().day == 9 and len(fit) + len(cal) == len(days)
    with pytest.raises(training_set.TrainingSetError, match="2 training cutoff"):
        training_set.rolling_splits(days[:6])


def test_parallel_fits_equal_sequential_ones():
    """CHURN_TRAIN_JOBS changes how fast training runs, never what it gives: 2 worker processes give the
    figures, predictions and shipped model of 1 job (fits run largest first, results come back in order)."""
    from spark_ml.churn import train, training_set

    X, y = _mixed_frame(1500)
    X = X.rename(columns={"tenure": training_set.RECENCY})
    cutoffs = pd.Series(np.repeat(pd.date_range("2026-01-01", periods=10), 150))
    one, two = (train.fit(X, y, cutoffs, seed=3, jobs=jobs) for jobs in (1, 2))
    assert list(one.result.scores.model.unique()) == ["gbt", "logistic", "recency"]
    assert sorted(one.result.scores.fold.unique()) == [0, 1, 2]
    pd.testing.assert_frame_equal(one.result.scores.drop(columns="fit_s"), two.result.scores.drop(columns="fit_s"))
    pd.testing.assert_frame_equal(one.result.predictions, two.result.predictions)
    np.testing.assert_array_equal(one.shipped.predict_proba(X), two.shipped.predict_proba(X))
    for feature in (training_set.RECENCY, "p_churn"):  # the drift reference: decile edges and shares
        for part in ("edges", "shares"):
            np.testing.assert_array_equal(one.reference[feature][part], two.reference[feature][part])


def test_next_best_action_rules():
    from spark_ml.churn import score

    band = ["low", "medium", "high", "very high", "high", "high", "low"]
    lapsed = np.array([False, False, False, False, False, False, True])
    downgraded = np.array([False, False, True, False, False, False, False])
    value = np.array([10.0, 10, 10, 500, 10, 0, 0])
    assert list(score.next_best_action(band, lapsed, downgraded, value, high_value=100.0)) == [
        "no action", "engagement e-mail", "restore previous tier", "retention call", "retention offer",
        "retention offer", "win-back offer"]


def test_drift_flags_a_shifted_feature_and_nothing_else():
    from spark_ml.churn import drift

    rng = np.random.default_rng(3)
    n = 20_000

    def frame(shift: float, free_share: float):
        X = pd.DataFrame({"sessions_30d": rng.poisson(8, n).astype(float),
                          "recency_days": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(20, n)),
                          "tenure_days": rng.uniform(0, 700, n) + shift,
                          "subscription_tier": pd.Categorical(np.where(rng.random(n) < free_share, "free", "basic"))})
        return X, rng.beta(1, 6, n)

    X_ref, p_ref = frame(0, 0.4)
    ref = drift.reference(X_ref, p_ref)
    X_same, p_same = frame(0, 0.4)
    same = drift.compare(ref, X_same, p_same).set_index("feature")
    assert list(same.index) == ["sessions_30d", "recency_days", "tenure_days", "subscription_tier", "p_churn"]
    assert (same.psi < 0.01).all() and not same.alert.any(), same
    assert pd.isna(same.loc["subscription_tier", "ks"]) and same.loc["tenure_days", "ks"] < 0.03

    X_shift, p_shift = frame(300, 0.4)  # tenure moved by 300 days: the one feature that must be flagged
    shifted = drift.compare(ref, X_shift, p_shift).set_index("feature")
    assert shifted.loc["tenure_days", "psi"] > 1 and shifted.loc["tenure_days", "ks"] > 0.4
    assert list(shifted.index[shifted.alert]) == ["tenure_days"]

    X_cat, _ = frame(0, 0.9)  # most customers now on the free tier, and a tier never seen in training
    X_cat["subscription_tier"] = pd.Categorical(np.where(rng.random(n) < 0.05, "premium", X_cat.subscription_tier))
    by_tier = drift.compare(ref, X_cat, rng.beta(4, 2, n)).set_index("feature")
    assert list(by_tier.index[by_tier.alert]) == ["subscription_tier", "p_churn"]
    # the hand computation of PSI: Σ (cur − ref) ln(cur / ref)
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * np.log(1.8) - 0.4 * np.log(0.2))

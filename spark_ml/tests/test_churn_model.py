"""spark_ml.churn: metrics on hand-computed inputs, calibration, risk bands, splits, the Telco loader, and
the model's cross-validated AUC on Telco (a few seconds; no service needed)."""
from __future__ import annotations

import lzma
import pathlib
import pickle

import numpy as np
import pandas as pd
import pytest
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

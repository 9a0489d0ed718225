"""Backtests: fit on one slice, calibrate on a second, score a third, for each split and model.

A split is three sets of row positions. Telco has no time, so stratified_splits makes them by stratified
K-fold with the calibration slice held out of each training part; on the platform's point-in-time data
the same Split carries rolling cutoffs (calibration later than fit, test later still) and backtest() is
unchanged.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, train_test_split

from spark_ml.churn import metrics
from spark_ml.churn.model import calibrate

UNCALIBRATED = "none"
CALIBRATION_SHARE = 0.2  # of each training part: ~1,100 rows on Telco folds, enough for a 2-parameter sigmoid


@dataclass(frozen=True)
class Split:
    """Row positions: the model is fitted on `fit`, its calibration on `calibrate`, both scored on `test`."""
    fit: np.ndarray
    calibrate: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Result:
    scores: pd.DataFrame       # one row per (model, calibration, fold): the metrics, fit seconds
    predictions: pd.DataFrame  # one row per test row and (model, calibration): fold, row, y, p

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over folds per (model, calibration), in the order models were given."""
        cols = [c for c in self.scores if c not in ("model", "calibration", "fold")]
        return self.scores.groupby(["model", "calibration"], sort=False)[cols].agg(["mean", "std"])


def stratified_splits(y, folds: int = 5, seed: int = 42, calibration_share: float = CALIBRATION_SHARE) -> list[Split]:
    """Stratified K-fold; within each training part a stratified `calibration_share` is kept for calibration."""
    y = np.asarray(y)
    splits = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        fit, cal = train_test_split(train, test_size=calibration_share, stratify=y[train], random_state=seed)
        splits.append(Split(np.sort(fit), np.sort(cal), test))
    return splits


def backtest(X: pd.DataFrame, y, splits: Iterable[Split], models: Mapping[str, object],
             methods: Iterable[str] = ("sigmoid",)) -> Result:
    """Fit a clone of each model per split and score it on the test rows, uncalibrated and per calibration method."""
    y = np.asarray(y)
    methods = tuple(methods)
    scores, predictions = [], []
    for fold, split in enumerate(splits):
        X_test, y_test = X.iloc[split.test], y[split.test]
        for name, estimator in models.items():
            t0 = time.perf_counter()
            fitted = clone(estimator).fit(X.iloc[split.fit], y[split.fit])
            fit_s = time.perf_counter() - t0
            variants = {UNCALIBRATED: fitted}
            variants.update({m: calibrate(fitted, X.iloc[split.calibrate], y[split.calibrate], m) for m in methods})
            for method, model in variants.items():
                p = model.predict_proba(X_test)[:, 1]
                scores.append({"model": name, "calibration": method, "fold": fold,
                               **metrics.evaluate(y_test, p), "fit_s": fit_s})
                predictions.append(pd.DataFrame({"model": name, "calibration": method, "fold": fold,
                                                 "row": split.test, "y": y_test, "p": p}))
    return Result(pd.DataFrame(scores), pd.concat(predictions, ignore_index=True))

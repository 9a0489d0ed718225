"""Backtests: fit on one slice, calibrate on a second, score a third, for each split and model.

A split is three sets of row positions. Telco has no time, so stratified_splits makes them by stratified
K-fold with the calibration slice held out of each training part; on the platform's point-in-time data
the same Split carries rolling cutoffs (calibration later than fit, test later still) and backtest() is
unchanged.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, train_test_split

from spark_ml.churn import metrics
from spark_ml.churn.model import CALIBRATION, calibrate

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


@dataclass(frozen=True)
class Fit:
    """One model to fit on `split.fit`, calibrate on `split.calibrate` by each of `methods`, score on `split.test`
    (which may be empty: the shipped model has no test rows)."""
    name: str
    fold: int
    estimator: object
    split: Split
    methods: tuple[str, ...] = (CALIBRATION,)


@dataclass(frozen=True)
class Fitted:
    fit: Fit
    variants: dict    # calibration method (and UNCALIBRATED) → fitted model
    p: dict           # the same keys → p(churn) on the test rows
    fit_s: float


def _fit_one(fit: Fit, X_fit, y_fit, X_cal, y_cal, X_test) -> Fitted:
    t0 = time.perf_counter()
    fitted = clone(fit.estimator).fit(X_fit, y_fit)
    fit_s = time.perf_counter() - t0
    variants = {UNCALIBRATED: fitted}
    variants.update({m: calibrate(fitted, X_cal, y_cal, m) for m in fit.methods})
    p = {m: v.predict_proba(X_test)[:, 1] if len(X_test) else np.empty(0) for m, v in variants.items()}
    return Fitted(fit, variants, p, fit_s)


def fit_all(X: pd.DataFrame, y, fits: Sequence[Fit], jobs: int = 1) -> list[Fitted]:
    """Every fit, in the order given, `jobs` at a time in single-threaded worker processes (joblib; 1 = here,
    one after another). Processes rather than the GBT's OpenMP threads: independent fits scale with the cores,
    and a process whose core is taken waits alone, where OpenMP threads wait on each other at every node
    (.env.example, CHURN_TRAIN_JOBS). The largest fits start first, so the last one to start is small."""
    y = np.asarray(y)
    largest_first = sorted(range(len(fits)), key=lambda i: -len(fits[i].split.fit))
    with parallel_config(backend="loky", inner_max_num_threads=1):
        done = Parallel(n_jobs=jobs)(delayed(_fit_one)(
            fits[i], X.iloc[fits[i].split.fit], y[fits[i].split.fit], X.iloc[fits[i].split.calibrate],
            y[fits[i].split.calibrate], X.iloc[fits[i].split.test]) for i in largest_first)
    by_position = dict(zip(largest_first, done))
    return [by_position[i] for i in range(len(fits))]


def fits_of(splits: Iterable[Split], models: Mapping[str, object], methods: Iterable[str] = (CALIBRATION,)) -> list[Fit]:
    """One Fit per (split, model): fold by fold, models in the order given."""
    return [Fit(name, fold, estimator, split, tuple(methods))
            for fold, split in enumerate(splits) for name, estimator in models.items()]


def result(y, fitted: Iterable[Fitted]) -> Result:
    """Scores and predictions of fitted backtests, uncalibrated and per calibration method."""
    y = np.asarray(y)
    scores, predictions = [], []
    for f in fitted:
        y_test = y[f.fit.split.test]
        for method, p in f.p.items():
            scores.append({"model": f.fit.name, "calibration": method, "fold": f.fit.fold,
                           **metrics.evaluate(y_test, p), "fit_s": f.fit_s})
            predictions.append(pd.DataFrame({"model": f.fit.name, "calibration": method, "fold": f.fit.fold,
                                             "row": f.fit.split.test, "y": y_test, "p": p}))
    return Result(pd.DataFrame(scores), pd.concat(predictions, ignore_index=True))


def backtest(X: pd.DataFrame, y, splits: Iterable[Split], models: Mapping[str, object],
             methods: Iterable[str] = (CALIBRATION,), jobs: int = 1) -> Result:
    """Fit a clone of each model per split and score it on the test rows, uncalibrated and per calibration method."""
    return result(y, fit_all(X, y, fits_of(splits, models, methods), jobs))

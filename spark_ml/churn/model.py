"""The churn model (gradient-boosted trees), its baselines, probability calibration and risk bands.

Estimators are unfitted scikit-learn objects over a pandas frame whose categorical features have dtype
`category` (spark_ml.churn.backtest clones them per split). Only the calibrated probability is a
probability a user may read; risk bands are cut on it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import make_column_selector, make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# Small, slowly learnt, regularised trees: churn signal is mostly main effects and low-order interactions,
# and the default (31 leaves, rate 0.1) overfits Telco's 4,500-row fit slices. Picked by hand among six
# settings; on 5-fold CV with three other seeds than the benchmark's it scores AUC 0.847-0.848 (the
# default 0.832-0.834, logistic regression 0.844-0.845).
GBT_PARAMS = dict(learning_rate=0.03, max_iter=300, max_leaf_nodes=6, min_samples_leaf=80,
                  l2_regularization=1.0, early_stopping=False)

# Sigmoid (Platt) rather than isotonic: two parameters fit stably on a ~1,100-row calibration slice, and a
# monotone map keeps the ranking, so AUC and lift are unchanged. On Telco isotonic had a higher ECE
# (0.028 vs 0.023) and lost 0.003 AUC and 0.03 PR-AUC to its ties. Isotonic stays available for large slices.
CALIBRATION = "sigmoid"

# Upper cut-offs on calibrated p(churn); bands are [lower, upper), the last [0.60, 1]. Absolute, so a band
# means the same risk in every run and model version (quantile bands would always fill "very high"):
# under 0.10 is far below a typical churn rate (Telco 0.265), 0.60 and up is churn more likely than not.
RISK_BANDS = {"low": 0.10, "medium": 0.30, "high": 0.60, "very high": 1.0}


def gbt(seed: int = 42) -> HistGradientBoostingClassifier:
    """The churn model: histogram gradient boosting, `category` columns split natively, NaN routed natively."""
    return HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed, **GBT_PARAMS)


def logistic() -> object:
    """Baseline: logistic regression on standardised numeric columns (median-imputed) and one-hot categories."""
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encode = make_column_transformer(
        (numeric, make_column_selector(dtype_include="number")),
        (OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include="category")))
    return make_pipeline(encode, LogisticRegression(max_iter=1000))


def single_feature(column: str) -> object:
    """Baseline: logistic regression on one numeric column (recency on the platform, tenure on Telco).
    Monotone in that column, so its AUC is the column's own ranking power; the fit only makes it a probability."""
    select = make_column_transformer((make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [column]))
    return make_pipeline(select, LogisticRegression())


def calibrate(fitted, X: pd.DataFrame, y, method: str = CALIBRATION) -> CalibratedClassifierCV:
    """Map a fitted model's scores to probabilities, learnt on (X, y): a slice the model never saw, later
    in time than its training rows wherever the data has time. The model itself is not refitted."""
    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(X, y)


def risk_band(p) -> pd.Categorical:
    """The risk band of each calibrated probability, by the RISK_BANDS cut-offs (ordered categories)."""
    uppers = list(RISK_BANDS.values())
    codes = np.searchsorted(uppers[:-1], np.asarray(p, dtype=float), side="right")  # p = 0.10 is "medium"
    return pd.Categorical.from_codes(codes, categories=list(RISK_BANDS), ordered=True)

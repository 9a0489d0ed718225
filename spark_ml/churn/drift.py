"""Drift of the scored population against the champion's training data: PSI and KS per feature and for the score.

The reference is taken when the model is trained (`reference()`, kept inside the packaged model), from its
training rows: per numeric feature the decile edges of its values and a sample of them, per text feature
its category shares, and the same for the model's calibrated scores. Each scoring run compares the rows
that are comparable, the customers active in the horizon before the cutoff (training rows are only
those), with `compare()`:
- PSI (population stability index) = Σ (cur − ref) · ln(cur / ref) over the reference's bins (deciles, so
  each holds ~10 % of the training rows; NaN is a bin of its own; categories unseen in training share one),
  shares floored at EPSILON so an empty bin counts without dividing by zero. Above PSI_ALERT (0.2, the
  usual "significant shift") the feature is flagged.
- KS: the two-sample Kolmogorov-Smirnov statistic for numeric features and the score (scipy), reported
  beside PSI; with thousands of rows its p-value flags shifts too small to matter, so only PSI alerts.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

PSI_ALERT = 0.2
EPSILON = 1e-4
SAMPLE = 5_000        # reference values kept per numeric feature for KS
SCORE = "p_churn"     # the score's row in the drift table
OTHER = "(other)"     # categories unseen in training


def _edges(values: np.ndarray) -> np.ndarray:
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return np.array([])
    return np.unique(np.quantile(finite, np.linspace(0.1, 0.9, 9)))


def _numeric_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per bin: (-inf, e1], (e1, e2], ..., (ek, inf), then NaN."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    bins = np.searchsorted(edges, values[~missing], side="left")
    counts = np.append(np.bincount(bins, minlength=len(edges) + 1), missing.sum())
    return counts / max(len(values), 1)


def _sample(values: np.ndarray, seed: int = 0) -> np.ndarray:
    finite = values[~np.isnan(values)]
    if len(finite) <= SAMPLE:
        return finite
    return np.random.default_rng(seed).choice(finite, SAMPLE, replace=False)


def reference(X: pd.DataFrame, p: np.ndarray) -> dict:
    """What scoring runs compare against, from the training rows X and the model's scores p on them."""
    ref = {}
    for column in X.columns:
        if isinstance(X[column].dtype, pd.CategoricalDtype):
            shares = X[column].astype(str).value_counts(normalize=True)
            ref[column] = {"kind": "category", "shares": shares.to_dict()}
        else:
            values = X[column].to_numpy(dtype=float)
            edges = _edges(values)
            ref[column] = {"kind": "numeric", "edges": edges, "shares": _numeric_shares(values, edges),
                           "sample": _sample(values)}
    p = np.asarray(p, dtype=float)
    edges = _edges(p)
    ref[SCORE] = {"kind": "numeric", "edges": edges, "shares": _numeric_shares(p, edges), "sample": _sample(p)}
    return ref


def psi(ref_shares, cur_shares) -> float:
    ref = np.maximum(np.asarray(ref_shares, dtype=float), EPSILON)
    cur = np.maximum(np.asarray(cur_shares, dtype=float), EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def compare(ref: dict, X: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    """One row per feature (and the score): feature, kind, psi, ks, ks_pvalue, alert (PSI > PSI_ALERT)."""
    rows = []
    current = {**{c: X[c] for c in X.columns}, SCORE: pd.Series(np.asarray(p, dtype=float))}
    for feature, r in ref.items():
        values = current.get(feature)
        if values is None:
            continue
        if r["kind"] == "category":
            known = list(r["shares"])
            cur = values.astype(str).where(values.astype(str).isin(known), OTHER).value_counts(normalize=True)
            value = psi([*r["shares"].values(), 0.0], [cur.get(k, 0.0) for k in known] + [cur.get(OTHER, 0.0)])
            ks = pvalue = None
        else:
            v = values.to_numpy(dtype=float)
            value = psi(r["shares"], _numeric_shares(v, r["edges"]))
            finite = v[~np.isnan(v)]
            if len(finite) and len(r["sample"]):
                test = ks_2samp(r["sample"], finite)
                ks, pvalue = float(test.statistic), float(test.pvalue)
            else:
                ks = pvalue = None
        rows.append({"feature": feature, "kind": r["kind"], "psi": value, "ks": ks, "ks_pvalue": pvalue,
                     "alert": value > PSI_ALERT})
    return pd.DataFrame(rows)

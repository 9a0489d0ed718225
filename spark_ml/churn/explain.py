"""Exact per-customer contributions of the churn model's features (SHAP values, path-dependent TreeSHAP).

Why not the shap package: shap 0.51.0 (the last for Python 3.11) reads a HistGradientBoostingClassifier's
trees by copying each node's `num_threshold` and ignores `is_categorical` and the category bitsets (its
tree loader; reported upstream as shap issue #3436), and the churn model splits `category` columns
natively, so its values would be wrong for contract, payment method etc. It would also add numba.
The model is small (300 trees of at most 6 leaves, so at most 5 distinct features per tree), so the
Shapley values are computed here exactly, by definition: per tree, over every subset of the features
that tree uses, with the tree's own path-dependent expectation E[f(x) | x_S] (follow x where the split's
feature is in S, otherwise average both children weighted by their training counts), which is what
TreeSHAP's "tree_path_dependent" mode computes. Shapley values add up over trees, so the model's values
are the sums. Additivity holds exactly: base + Σ contributions = the model's raw margin (log-odds).

What is explained is the margin of the uncalibrated model. The shipped model is that margin passed
through a sigmoid calibration, a strictly increasing map, so a contribution that raises the margin raises
the calibrated p(churn) and the ranking is the margin's; `margin_model()` checks the map is increasing.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier


def margin_model(fitted) -> HistGradientBoostingClassifier:
    """The gradient-boosted model inside a calibrated one (or the model itself). Refuses a calibration
    that is not increasing in the margin, since the explanation would then rank the wrong way."""
    if isinstance(fitted, CalibratedClassifierCV):
        for calibrated in fitted.calibrated_classifiers_:
            for calibrator in calibrated.calibrators:
                # sklearn's sigmoid is 1 / (1 + exp(a·f + b)): increasing in f when a < 0
                if getattr(calibrator, "a_", -1.0) >= 0 or getattr(calibrator, "increasing_", True) is False:
                    raise ValueError("the calibration is not increasing in the model's margin")
        fitted = fitted.calibrated_classifiers_[0].estimator
        fitted = getattr(fitted, "estimator", fitted)  # FrozenEstimator wraps the fitted model unchanged
    if not isinstance(fitted, HistGradientBoostingClassifier) or fitted.n_trees_per_iteration_ != 1:
        raise TypeError(f"expected a fitted binary HistGradientBoostingClassifier, got {type(fitted).__name__}")
    return fitted


def contributions(fitted, X: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """(base value, one row per customer and one column per feature of X): exact SHAP values of the raw
    margin. base + row sum = the model's decision_function for that customer."""
    gbt = margin_model(fitted)
    Xp = gbt._preprocess_X(X, reset=False)  # the model's own encoding: categories → codes, categorical first
    original = _original_columns(gbt, X.shape[1])
    phi = np.zeros((len(X), X.shape[1]))
    base = float(gbt._baseline_prediction.ravel()[0])
    for (tree,) in gbt._predictors:
        tree_base, tree_phi = _tree_shapley(tree, Xp)
        base += tree_base
        for k, values in tree_phi.items():
            phi[:, original[k]] += values
    return base, pd.DataFrame(phi, index=X.index, columns=X.columns)


def _original_columns(gbt, n_features: int) -> np.ndarray:
    """Column of X for each column of the preprocessed matrix (the encoder puts categorical columns first)."""
    if gbt._preprocessor is None:
        return np.arange(n_features)
    categorical = np.asarray(gbt.is_categorical_)  # in X's column order
    return np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])


def _tree_shapley(tree, Xp: np.ndarray) -> tuple[float, dict[int, np.ndarray]]:
    nodes = tree.nodes
    splits = np.flatnonzero(~nodes["is_leaf"].astype(bool))
    features = sorted({int(nodes["feature_idx"][i]) for i in splits})
    go_left = {int(i): _goes_left(tree, nodes[i], Xp) for i in splits}

    def value(node: int, known: frozenset) -> np.ndarray | float:
        n = nodes[node]
        if n["is_leaf"]:
            return float(n["value"])
        left, right = int(n["left"]), int(n["right"])
        if int(n["feature_idx"]) in known:
            return np.where(go_left[node], value(left, known), value(right, known))
        wl, wr = float(nodes["count"][left]), float(nodes["count"][right])
        return (wl * value(left, known) + wr * value(right, known)) / (wl + wr)

    m = len(features)
    v = {S: np.broadcast_to(value(0, frozenset(S)), (len(Xp),))
         for r in range(m + 1) for S in itertools.combinations(features, r)}
    phi = {}
    for j in features:
        others = [f for f in features if f != j]
        total = np.zeros(len(Xp))
        for r in range(m):
            weight = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
            for S in itertools.combinations(others, r):
                total += weight * (v[tuple(sorted((*S, j)))] - v[S])
        phi[j] = total
    return float(v[()][0]), phi


def _goes_left(tree, node, Xp: np.ndarray) -> np.ndarray:
    """Where each row goes at a split, as the model's predictor decides it (NaN by missing_go_to_left;
    a category goes left when its code is in the node's bitset, an unknown category is NaN)."""
    x = Xp[:, int(node["feature_idx"])]
    missing = np.isnan(x)
    if node["is_categorical"]:
        bitset = tree.raw_left_cat_bitsets[int(node["bitset_idx"])]
        codes = np.where(missing, 0, x).astype(np.int64)
        inside = (codes >= 0) & (codes < 32 * len(bitset))
        words = bitset[np.clip(codes // 32, 0, len(bitset) - 1)]
        left = inside & ((words >> (codes % 32).astype(np.uint32)) & 1).astype(bool)
    else:
        left = x <= node["num_threshold"]
    return np.where(missing, bool(node["missing_go_to_left"]), left)

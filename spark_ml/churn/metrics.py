"""The churn model's evaluation metrics. Every function takes 0/1 labels `y` and scores `p` of the same length.

ROC-AUC, PR-AUC and the Brier score are scikit-learn's; lift and ECE have no scikit-learn function, so
they are defined here, precisely (ties and bin edges matter on integer-valued baselines).
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

ECE_BINS = 10  # equal-width bins of width 0.1: the usual convention, so figures compare with published ECEs
LIFT_FRACTION = 0.10


def roc_auc(y, p) -> float:
    """Area under the ROC curve: the probability that a random churner scores above a random non-churner
    (ties count one half). Depends only on the ranking of `p`."""
    return float(roc_auc_score(y, p))


def pr_auc(y, p) -> float:
    """Area under the precision-recall curve as average precision: Σ_k (R_k − R_{k−1}) · P_k over the
    distinct score thresholds in decreasing order (step-wise, no interpolation; tied scores form one
    threshold). Its no-skill level is the churn rate."""
    return float(average_precision_score(y, p))


def brier(y, p) -> float:
    """Brier score: mean of (p − y)²; 0 is perfect, and always predicting the churn rate r scores r(1 − r)."""
    return float(brier_score_loss(y, p))


def lift_at(y, p, fraction: float = LIFT_FRACTION) -> float:
    """Lift in the top `fraction`: churn rate among the k = ⌈fraction · n⌉ highest scores divided by the
    overall churn rate (1 = no better than random; the maximum is 1 / max(rate, k / n)).

    Ties at the cut are shared: when the k-th score is tied, the top k take the tied group's churn rate for
    the places left, i.e. the expected value over random orders of the ties, so the result never depends
    on row order. Raises ValueError when there is no churner or `fraction` is not in (0, 1].
    """
    y, p = _arrays(y, p)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if y.sum() == 0:
        raise ValueError("lift is undefined without a single positive label")
    k = max(1, math.ceil(round(fraction * len(y), 9)))  # round first: 0.07 * 100 is 7.000000000000001
    cut = np.sort(p)[::-1][k - 1]
    above, tied = p > cut, p == cut
    positives = y[above].sum() + (k - above.sum()) * y[tied].mean()
    return float((positives / k) / y.mean())


def ece(y, p, bins: int = ECE_BINS) -> float:
    """Expected calibration error over `bins` equal-width bins of [0, 1]:
    Σ_b (n_b / n) · |mean(y in b) − mean(p in b)|, empty bins contributing nothing.

    Bins are closed on the right, as in sklearn.calibration.calibration_curve: bin 0 is [0, 1/bins],
    bin b > 0 is (b/bins, (b+1)/bins], so p = 0.5 falls in (0.4, 0.5] with 10 bins. Raises ValueError for
    scores outside [0, 1].
    """
    y, p = _arrays(y, p)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("ECE needs probabilities in [0, 1]")
    ids = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p)  # side="left" = right-closed bins
    gap = np.bincount(ids, weights=y, minlength=bins) - np.bincount(ids, weights=p, minlength=bins)
    return float(np.abs(gap).sum() / len(y))  # Σ_b |Σy − Σp| / n = Σ_b (n_b / n) |mean y − mean p|


def evaluate(y, p) -> dict[str, float]:
    """All five metrics of one set of scores, keyed as the benchmark's JSON names them."""
    return {"roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "lift_10": lift_at(y, p),
            "brier": brier(y, p), "ece": ece(y, p)}


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y and p must be non-empty 1-d arrays of one length, got {y.shape} and {p.shape}")
    return y, p

"""Top reasons per customer: the features that push the model's margin toward churn most, in words.

A reason is a feature whose exact contribution (spark_ml.churn.explain) is positive, phrased from the
customer's own value ("month-to-month contract", "tenure under 6 months", "no order in 45 days"), never a
raw column name. Protective features (negative contributions) are never listed as reasons: a customer
with fewer than `k` positive contributions gets fewer reasons, and `n_reasons` says how many.
Deterministic: ties in contribution are broken by column order.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

TOP_K = 3
# contributions are sums of float terms: anything below this is rounding, not a push toward churn
MIN_CONTRIBUTION = 1e-9

_YES_NO = {  # 0/1 columns: (phrase when 1, phrase when 0)
    "female": ("female", "male"),
    "senior_citizen": ("senior citizen", "not a senior citizen"),
    "partner": ("has a partner", "no partner"),
    "dependents": ("has dependents", "no dependents"),
    "phone_service": ("has phone service", "no phone service"),
    "paperless_billing": ("paperless billing", "paper billing"),
}
_ADD_ONS = {"online_security": "online security", "online_backup": "online backup",
            "device_protection": "device protection", "tech_support": "tech support",
            "streaming_tv": "TV streaming", "streaming_movies": "movie streaming"}
_CATEGORIES = {
    "contract": {"Month-to-month": "month-to-month contract", "One year": "one-year contract",
                 "Two year": "two-year contract"},
    "internet_service": {"Fiber optic": "fiber-optic internet", "DSL": "DSL internet", "No": "no internet service"},
    "multiple_lines": {"Yes": "several phone lines", "No": "a single phone line", "No phone service": "no phone service"},
}


def _bucket(value: float, edges: list[tuple[float, str]], last: str) -> str:
    """The phrase of the first edge the value is under, else `last` (fixed buckets keep wording stable)."""
    return next((phrase for edge, phrase in edges if value < edge), last)


def phrase(column: str, value) -> str:
    """The analyst's words for one feature value of one customer."""
    missing = value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
    if column in _YES_NO and not missing:
        return _YES_NO[column][0 if int(value) == 1 else 1]
    if column in _ADD_ONS:
        if value == "No internet service":
            return "no internet service"
        return f"{'has' if value == 'Yes' else 'no'} {_ADD_ONS[column]}"
    if column in _CATEGORIES and value in _CATEGORIES[column]:
        return _CATEGORIES[column][value]
    if column == "payment_method" and not missing:
        return f"pays by {str(value).lower()}"
    if column == "tenure" and not missing:  # months (Telco)
        return _bucket(value, [(6, "tenure under 6 months"), (12, "tenure under a year"),
                               (24, "tenure of 1-2 years")], "tenure over 2 years")
    if column == "tenure_days" and not missing:  # the platform
        return _bucket(value, [(30, "customer for under a month"), (180, "customer for under 6 months"),
                               (365, "customer for under a year")], "customer for over a year")
    if column == "monthly_charges" and not missing:  # buckets, so reasons can be counted across customers
        return _bucket(value, [(30, "monthly charges under $30"), (60, "monthly charges $30-60"),
                               (90, "monthly charges $60-90")], "monthly charges $90 or more")
    if column == "total_charges":
        return "no bill yet" if missing else _bucket(
            value, [(500, "under $500 billed to date"), (2000, "$500-2,000 billed to date")], "over $2,000 billed to date")
    if column == "recency_days":
        return "no completed order yet" if missing else f"no order in {int(value)} days"
    if column == "days_since_last_login":
        return "never logged in" if missing else f"no login in {int(value)} days"
    if column.startswith("orders_") and column.endswith("d") and not missing:
        days = column[7:-1]
        return f"no completed order in the last {days} days" if value == 0 else f"{int(value)} orders in the last {days} days"
    return _platform(column, value, missing)


def _money(value: float) -> str:
    return _bucket(value, [(50, "under $50"), (200, "$50-200"), (1000, "$200-1,000")], "over $1,000")


def _platform(column: str, value, missing: bool) -> str:
    """The platform's churn_features columns (spark_ml.churn.training_set)."""
    if column.startswith("sessions_") and column.endswith("d") and not missing:
        days = column[9:-1]
        if value == 0:
            return f"no visit in the last {days} days"
        return f"{int(value)} visit{'' if int(value) == 1 else 's'} in the last {days} days"
    if column == "days_since_last_session":
        return "no visit yet" if missing else f"no visit in {int(value)} days"
    if column in ("tier_downgraded_30d", "tier_upgraded_30d") and not missing:
        change = "downgraded" if column == "tier_downgraded_30d" else "upgraded"
        return f"{change} in the last 30 days" if int(value) == 1 else f"not {change} in the last 30 days"
    if column == "subscription_tier" and not missing:
        return f"on the {value} tier"
    if column == "country" and not missing:
        return f"based in {value}"
    if column == "acquisition_channel" and not missing:
        return f"came through {str(value).replace('_', ' ')}"
    if column == "activity_trend" and not missing:  # this week's visit rate against the last 30 days'
        return _bucket(value, [(0.5, "visits falling sharply"), (0.9, "visits falling"), (1.1, "visits steady")],
                       "visits rising")
    if column == "frequency" and not missing:
        return "no completed order yet" if value == 0 else f"{int(value)} completed orders in all"
    if column in ("monetary", "revenue_90d") and not missing:
        period = "in all" if column == "monetary" else "in the last 90 days"
        return f"nothing spent {period}" if value == 0 else f"{_money(value)} spent {period}"
    if column == "avg_order_value":
        return "no completed order yet" if missing else f"average order {_money(value)}"
    if column in ("cancellations_90d", "refunds_90d") and not missing:
        what = "cancelled" if column == "cancellations_90d" else "refunded"
        return f"no {what} order in 90 days" if value == 0 else f"{int(value)} {what} orders in 90 days"
    words = column.replace("_", " ")
    return f"{words}: unknown" if missing else f"{words}: {value}"


def top_reasons(contrib: pd.DataFrame, X: pd.DataFrame, k: int = TOP_K) -> pd.DataFrame:
    """Per customer (rows of `contrib`, aligned with X): reason_1..k (phrase or None), their features and
    contributions (margin units, log-odds), and n_reasons = how many of the k are real reasons.
    Vectorised per (rank, feature): each distinct value is phrased once (a million customers in seconds)."""
    values = contrib.to_numpy()
    # stable sort on −contribution: equal contributions keep column order, so the result is deterministic
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1)
    positive = top > MIN_CONTRIBUTION
    columns = np.asarray(contrib.columns, dtype=object)
    out = {}
    for rank in range(order.shape[1]):
        phrases = np.full(len(values), None, dtype=object)
        for c in np.unique(order[positive[:, rank], rank]):
            rows = positive[:, rank] & (order[:, rank] == c)
            column = columns[c]
            codes, distinct = pd.factorize(pd.Series(X[column].to_numpy()[rows], dtype=object), use_na_sentinel=False)
            phrased = np.array([phrase(column, v) for v in distinct], dtype=object)
            phrases[rows] = phrased[codes]
        out[f"reason_{rank + 1}"] = phrases
        out[f"feature_{rank + 1}"] = np.where(positive[:, rank], columns[order[:, rank]], None)
        out[f"contribution_{rank + 1}"] = np.where(positive[:, rank], top[:, rank], np.nan)
    out["n_reasons"] = (values > MIN_CONTRIBUTION).sum(axis=1).clip(max=k).astype(int)
    return pd.DataFrame(out, index=contrib.index)

"""The platform's churn rows (dbt model churn_features in ClickHouse) as model input, and their time splits.

Every row is a (customer, cutoff) whose features read only data before its cutoff (the dbt model's
contract; tests/integration/test_dbt_marts.py checks it by adding data after a cutoff). Training rows
carry the label "no web session and no order in the `churn_horizon_days` from the cutoff on"; scoring
rows (cutoff = snapshot_date) carry none.

Splits are by time: the distinct training cutoffs, oldest first, are cut into GROUPS consecutive
blocks. Backtest k fits on the blocks before k - 1, calibrates on block k - 1 and tests on block k,
so the model is always scored on cutoffs later than everything it learnt from, and calibrated on a
slice later than its fit. The shipped model fits on all blocks but the last and calibrates on the last.
Label windows are `horizon` days long and cutoffs are closer together than that, so a fitted row's
label window can overlap a later test cutoff's: no feature or label of a test row is seen in training,
but the fit does see the same calendar period. On simulated data (behaviour does not change with
the calendar) this is harmless; docs/churn_model.md says so.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from spark_ml.churn.backtest import Split

DEFAULT_SOURCE = "analytics.churn_features"
NUMERIC = ("tenure_days", "sessions_7d", "sessions_30d", "sessions_90d", "activity_trend",
           "days_since_last_session", "days_since_last_login", "orders_30d", "orders_90d", "revenue_90d",
           "frequency", "monetary", "avg_order_value", "recency_days", "cancellations_90d", "refunds_90d",
           "tier_downgraded_30d", "tier_upgraded_30d")
CATEGORICAL = ("subscription_tier", "country", "acquisition_channel")
FEATURES = NUMERIC + CATEGORICAL
KEYS = ("customer_id", "cutoff_date")
RECENCY = "days_since_last_session"   # the "recency only" baseline's feature
GROUPS = 5                            # time blocks of training cutoffs: up to 3 rolling backtests
# Training rows kept at most (a deterministic sample of customers beyond it, by a hash of the id): at
# a million customers and 28 daily cutoffs the table holds ~20M training rows, and the gradient-boosted
# trees learn as much from 600k of them.
MAX_TRAINING_ROWS = 600_000


class TrainingSetError(RuntimeError):
    """Not enough data to train or score (one-line message)."""


def _where(training: bool, customer_prefix: str | None) -> tuple[str, dict]:
    where, params = [f"is_training = {int(training)}"], {}
    if customer_prefix:
        where.append("match(customer_id, {p:String})")
        params["p"] = "^" + re.escape(customer_prefix) + "[0-9]+$"
    return " AND ".join(where), params


def read(client, source: str = DEFAULT_SOURCE, training: bool = True, customer_prefix: str | None = None,
         max_rows: int = MAX_TRAINING_ROWS) -> pd.DataFrame:
    """Training rows (with `churned`) or scoring rows of `source`, ordered by cutoff and customer."""
    exists = str(client.command(f"EXISTS TABLE {source}")).strip()
    if exists != "1":
        raise TrainingSetError(f"ClickHouse table {source} does not exist; build it with dbt (model churn_features)")
    where, params = _where(training, customer_prefix)
    total = int(client.command(f"SELECT count() FROM {source} WHERE {where}", parameters=params))
    if total == 0:
        kind = "training" if training else "scoring"
        raise TrainingSetError(f"{source} has no {kind} rows{f' for prefix {customer_prefix}' if customer_prefix else ''}"
                               " (the data may span less than churn_horizon_days + churn_min_history_days)")
    if training and total > max_rows:  # the same customers at every cutoff, the same ones every time
        where += f" AND cityHash64(customer_id) % 1000000 < {int(1_000_000 * max_rows / total)}"
    columns = ", ".join([*KEYS, *FEATURES, "active"] + (["churned"] if training else []))
    return client.query_df(f"SELECT {columns} FROM {source} WHERE {where} ORDER BY cutoff_date, customer_id",
                           parameters=params)


def features(rows: pd.DataFrame) -> pd.DataFrame:
    """The model's input: numeric columns as float (NULL → NaN, which the trees route natively),
    text columns as `category`."""
    X = rows[list(FEATURES)].copy()
    for c in NUMERIC:
        X[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
    for c in CATEGORICAL:
        X[c] = X[c].astype("string").fillna("unknown").astype("category")
    return X.reset_index(drop=True)


def labels(rows: pd.DataFrame) -> np.ndarray:
    return rows["churned"].astype(int).to_numpy()


def _blocks(cutoffs, groups: int) -> list[np.ndarray]:
    """Row positions of each block of consecutive distinct cutoffs (oldest block first)."""
    cutoffs = pd.to_datetime(pd.Series(cutoffs)).to_numpy()
    distinct = np.unique(cutoffs)
    if len(distinct) < 3:
        raise TrainingSetError(f"{len(distinct)} training cutoff(s); the time splits need at least 3 "
                               "(more history than churn_horizon_days + churn_min_history_days + 2 days)")
    parts = np.array_split(distinct, min(groups, len(distinct)))
    return [np.flatnonzero(np.isin(cutoffs, part)) for part in parts]


def rolling_splits(cutoffs, groups: int = GROUPS) -> list[Split]:
    """Backtest k: fit on blocks < k - 1, calibrate on block k - 1, test on block k (k = 2 .. blocks - 1)."""
    blocks = _blocks(cutoffs, groups)
    return [Split(np.concatenate(blocks[:k - 1]), blocks[k - 1], blocks[k]) for k in range(2, len(blocks))]


def final_split(cutoffs, groups: int = GROUPS) -> tuple[np.ndarray, np.ndarray]:
    """The shipped model's rows: fit on every block but the newest, calibrate on the newest."""
    blocks = _blocks(cutoffs, groups)
    return np.concatenate(blocks[:-1]), blocks[-1]


def cutoff_range(rows: pd.DataFrame, positions: np.ndarray) -> str:
    dates = pd.to_datetime(rows["cutoff_date"].iloc[positions])
    return f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}"

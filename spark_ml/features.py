"""The contract of the `customer_features` mart: the single source of truth for its columns.

`analytics.customer_features` (dbt, ClickHouse) has one row per customer and snapshot date. The
export (spark_ml.lakehouse) checks a mart against `COLUMNS` and casts it to `arrow_schema()`; the
segmentation job (spark_ml.segmentation) clusters on `CLUSTER_FEATURES`; docs/customer_features.md
documents the same list. `synthetic()` generates realistic features with a hidden churn flag for
tests and benchmarks (no services, deterministic under a seed).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: str            # "string" | "date" | "int32" | "float64"
    nullable: bool
    description: str

    @property
    def clickhouse_type(self) -> str:
        base = {"string": "String", "date": "Date", "int32": "Int32", "float64": "Float64"}[self.type]
        return f"Nullable({base})" if self.nullable else base


COLUMNS: tuple[Column, ...] = (
    Column("customer_id", "string", False, "customer key (crm.customers.customer_id)"),
    Column("snapshot_date", "date", False, "as-of date of the features (UTC); windows end the day before"),
    Column("signup_date", "date", False, "signup date (crm.customers)"),
    Column("country", "string", False, "ISO country code (crm.customers)"),
    Column("acquisition_channel", "string", False, "acquisition channel (crm.customers)"),
    Column("subscription_tier", "string", False, "free | basic | premium (crm.customers)"),
    Column("tenure_days", "int32", False, "snapshot_date - signup_date, in days (>= 0)"),
    Column("recency_days", "int32", False,
           "days since the last completed order; customers without one: days since signup (= tenure_days)"),
    Column("frequency", "int32", False, "completed orders, lifetime"),
    Column("monetary", "float64", False, "revenue of completed orders, lifetime, net of refunds (>= 0)"),
    Column("avg_order_value", "float64", True, "monetary / frequency; NULL without a completed order"),
    Column("sessions_7d", "int32", False, "distinct sessions in the 7 days before snapshot_date"),
    Column("sessions_30d", "int32", False, "distinct sessions in the last 30 days (>= sessions_7d)"),
    Column("sessions_90d", "int32", False, "distinct sessions in the last 90 days (>= sessions_30d)"),
    Column("orders_7d", "int32", False, "completed orders in the last 7 days"),
    Column("orders_30d", "int32", False, "completed orders in the last 30 days (>= orders_7d)"),
    Column("orders_90d", "int32", False, "completed orders in the last 90 days (>= orders_30d, <= frequency)"),
    Column("revenue_90d", "float64", False, "revenue of completed orders in the last 90 days"),
    Column("activity_trend", "float64", False,
           "(sessions_30d + 1) / (sessions_90d / 3 + 1): 1 = steady, < 1 declining, > 1 growing"),
    Column("conversion_rate", "float64", True, "orders_90d / sessions_90d; NULL without a session in 90 days"),
    Column("cancellations", "int32", False, "cancelled orders, lifetime"),
    Column("refunds", "int32", False, "refunded orders, lifetime"),
    Column("days_since_last_login", "int32", True, "days since the last login event; NULL if never logged in"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
KEY = "customer_id"

# What K-Means sees (after the transform below, median imputation and standard scaling).
# (avg_order_value is profiled, not clustered: monetary / frequency already carry it, and its
# imputed value for customers without an order blurs every cluster.)
CLUSTER_FEATURES: tuple[str, ...] = (
    "recency_days", "frequency", "monetary", "tenure_days", "sessions_30d", "orders_90d",
    "activity_trend", "days_since_last_login",
)
# Capped before scaling: tenure separates new customers from the rest; beyond a year it says little
# about behaviour, and its wide spread among established customers would only blur the clusters.
CAPS: dict[str, float] = {"tenure_days": 365}
# Clustered only where the customer has a completed order (NULL otherwise, then imputed by the median):
# without one the mart falls back to tenure_days, so K-Means would see tenure twice and split old from
# young non-buyers instead of active from lapsed customers (on simulator data, where most customers
# have no order in the window, the churners then did not get a segment of their own).
BUYERS_ONLY: frozenset[str] = frozenset({"recency_days"})
# Heavy-tailed counts and amounts are clustered as log1p(x): otherwise a few big spenders dominate.
LOG_FEATURES: frozenset[str] = frozenset({
    "recency_days", "frequency", "monetary", "sessions_30d", "orders_90d", "avg_order_value", "days_since_last_login",
})  # tenure_days stays linear: in log units the few-days-old customers would dominate every clustering
# Columns described per segment in segment_profiles (means of the raw values).
PROFILE_FEATURES: tuple[str, ...] = (
    "recency_days", "frequency", "monetary", "tenure_days", "sessions_7d", "sessions_30d", "sessions_90d",
    "orders_30d", "orders_90d", "activity_trend", "conversion_rate", "avg_order_value", "cancellations",
    "refunds", "days_since_last_login",
)

def clickhouse_ddl(table: str = "analytics.customer_features") -> str:
    """A ClickHouse table with exactly the contract's columns (tests; a reference for the dbt model)."""
    cols = ",\n  ".join(f"`{c.name}` {c.clickhouse_type}" for c in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n) ENGINE = MergeTree ORDER BY (snapshot_date, customer_id)"


_ARROW = {"string": pa.string(), "date": pa.date32(), "int32": pa.int32(), "float64": pa.float64()}


def arrow_schema() -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW[c.type], nullable=c.nullable) for c in COLUMNS])


class ContractError(ValueError):
    """A table that does not satisfy the customer_features contract."""


def conform(table: pa.Table, source: str = "customer_features") -> pa.Table:
    """Check `table` against the contract and return it with exactly the contract's columns and types.

    Extra columns are dropped; a missing column, an uncastable type, a NULL in a required column or
    a duplicate (customer_id, snapshot_date) raises ContractError naming what is wrong.
    """
    missing = [n for n in COLUMN_NAMES if n not in table.column_names]
    if missing:
        raise ContractError(f"{source} lacks column(s) {', '.join(missing)} of the customer_features contract "
                            f"(spark_ml/features.py, docs/customer_features.md)")
    schema = arrow_schema()
    arrays = []
    for field in schema:
        col = table.column(field.name)
        try:
            col = col.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ContractError(f"{source}.{field.name}: cannot cast {col.type} to {field.type}: {exc}") from None
        if not field.nullable and col.null_count:
            raise ContractError(f"{source}.{field.name} has {col.null_count} NULL(s) but the contract requires a value")
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, schema=schema)
    keys = out.group_by([KEY, "snapshot_date"]).aggregate([([], "count_all")])
    if keys.num_rows != out.num_rows:
        raise ContractError(f"{source} has {out.num_rows - keys.num_rows} duplicate (customer_id, snapshot_date) row(s)")
    return out


# --- synthetic features --------------------------------------------------------------------------

# Latent personas: share, tenure range (days), session rate per day (last 30 d / the 60 d before),
# conversion per session, older orders per month, order value (log-normal median), churn probability.
PERSONAS = {
    #               share  tenure       rate30  rate60  conv   hist/mo aov   p(churn)
    "champion":    (0.12, (200, 1500),  1.00,   0.95,   0.35,  2.5,    120., 0.01),
    "loyal":       (0.27, (300, 1500),  0.25,   0.25,   0.20,  0.6,    65.,  0.03),
    "new":         (0.12, (3, 45),      0.35,   0.0,    0.12,  0.0,    55.,  0.08),
    "casual":      (0.26, (120, 1200),  0.20,   0.20,   0.10,  0.35,   45.,  0.04),
    "at_risk":     (0.11, (300, 1500),  0.03,   0.25,   0.15,  0.9,    80.,  0.60),
    "hibernating": (0.12, (200, 1500),  0.0,    0.005,  0.05,  0.05,   40.,  0.85),
}
COUNTRIES = (["US"] * 30 + ["GB"] * 10 + ["DE"] * 10 + ["FR"] * 8 + ["ES"] * 5 + ["IT"] * 5 + ["NL"] * 4
             + ["PL"] * 4 + ["SE"] * 3 + ["CA"] * 6 + ["BR"] * 5 + ["IN"] * 5 + ["AU"] * 5)
CHANNELS = ("organic", "paid_search", "social", "email", "referral", "affiliate")
TIERS = ("free", "basic", "premium")


def synthetic(n: int, seed: int = 7, snapshot_date: dt.date = dt.date(2026, 11, 1),
              drift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` customers' features (contract columns, pandas dtypes matching arrow_schema) and their
    hidden ground truth (customer_id, churned, churn_date), as the simulator writes it.

    `drift` (0..1) scales behaviour slightly (rates and amounts multiplied by 1 + drift·noise) to
    imitate the next snapshot of the same customers, for retrain-stability tests.
    """
    rng = np.random.default_rng(seed)
    names = list(PERSONAS)
    shares = np.array([PERSONAS[p][0] for p in names])
    persona_idx = rng.choice(len(names), size=n, p=shares / shares.sum())
    par = np.array([[PERSONAS[p][1][0], PERSONAS[p][1][1], *PERSONAS[p][2:]] for p in names], dtype=float)[persona_idx]
    lo, hi, rate30, rate60, conv, hist, aov_med, p_churn = par.T
    jitter = lambda scale: np.exp(rng.normal(0, scale, n))  # noqa: E731 (per-customer multiplicative noise)
    wobble = 1 + drift * rng.normal(0, 1, n).clip(-2, 2)

    tenure = rng.integers(lo.astype(int), hi.astype(int) + 1)
    r30 = rate30 * jitter(0.2) * wobble
    r60 = rate60 * jitter(0.2) * wobble
    cover = lambda days: np.clip(tenure / days, 0, 1)  # noqa: E731 (a young customer has fewer days in a window)
    s7 = rng.poisson(r30 * 7 * cover(7))
    s30 = s7 + rng.poisson(r30 * 23 * cover(30))
    s90 = s30 + rng.poisson(np.where(tenure > 30, r60 * 60 * np.clip((tenure - 30) / 60, 0, 1), 0))
    c = np.clip(conv * jitter(0.2), 0, 0.9)
    o7 = rng.binomial(s7, c)
    o30 = o7 + rng.binomial(s30 - s7, c)
    o90 = o30 + rng.binomial(s90 - s30, c)
    older = rng.poisson(hist * jitter(0.3) * np.clip(tenure - 90, 0, None) / 30)
    freq = o90 + older
    aov = aov_med * jitter(0.25) * wobble.clip(0.5)
    monetary = np.round(freq * aov * jitter(0.1), 2)
    rev90 = np.round(np.where(freq > 0, monetary * o90 / np.maximum(freq, 1), 0.0), 2)

    u = rng.random(n)
    recency = np.select(
        [o7 > 0, o30 > 0, o90 > 0, older > 0],
        [u * 7, 7 + u * 23, 30 + u * 60, 90 + u * np.maximum(tenure - 90, 1)],
        default=tenure).astype(int)
    recency = np.minimum(recency, tenure)
    never_login = rng.random(n) < np.where(s90 > 0, 0.0, 0.08)
    login = np.select([s7 > 0, s30 > 0, s90 > 0],
                      [u * 7, 7 + u * 23, 30 + u * 60],
                      default=np.minimum(90 + rng.exponential(150, n), tenure)).astype(int)
    login = np.minimum(login, tenure)

    tier_p = np.where(np.isin(persona_idx, [names.index("champion"), names.index("loyal")])[:, None],
                      [0.25, 0.4, 0.35], [0.55, 0.3, 0.15])
    tier_idx = (rng.random(n)[:, None] > np.cumsum(tier_p, axis=1)).sum(axis=1).clip(0, 2)
    churned = rng.random(n) < p_churn

    ids = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 7))
    feats = pd.DataFrame({
        "customer_id": ids,
        "snapshot_date": snapshot_date,
        "signup_date": (np.datetime64(snapshot_date, "D") - tenure.astype("timedelta64[D]")).astype("datetime64[s]"),
        "country": np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)],
        "acquisition_channel": np.array(CHANNELS)[rng.integers(0, len(CHANNELS), n)],
        "subscription_tier": np.array(TIERS)[tier_idx],
        "tenure_days": tenure.astype("int32"),
        "recency_days": recency.astype("int32"),
        "frequency": freq.astype("int32"),
        "monetary": monetary,
        "avg_order_value": pd.array(np.where(freq > 0, np.round(monetary / np.maximum(freq, 1), 2), np.nan),
                                    dtype="Float64"),
        "sessions_7d": s7.astype("int32"), "sessions_30d": s30.astype("int32"), "sessions_90d": s90.astype("int32"),
        "orders_7d": o7.astype("int32"), "orders_30d": o30.astype("int32"), "orders_90d": o90.astype("int32"),
        "revenue_90d": rev90,
        "activity_trend": (s30 + 1) / (s90 / 3 + 1),
        "conversion_rate": pd.array(np.where(s90 > 0, o90 / np.maximum(s90, 1), np.nan), dtype="Float64"),
        "cancellations": rng.binomial(freq + 1, 0.04).astype("int32"),
        "refunds": rng.binomial(freq, 0.03).astype("int32"),
        "days_since_last_login": pd.array(np.where(never_login, np.nan, login), dtype="Int32"),
    })
    churn_dates = np.where(churned, (np.datetime64(snapshot_date, "D")
                                     - np.minimum(recency, 60).astype("timedelta64[D]")).astype(str), "")
    truth = pd.DataFrame({"customer_id": ids, "churned": churned, "churn_date": churn_dates,
                          "persona": np.array(names)[persona_idx]})
    return feats, truth


def synthetic_arrow(n: int, seed: int = 7, **kwargs) -> tuple[pa.Table, pd.DataFrame]:
    feats, truth = synthetic(n, seed, **kwargs)
    return conform(pa.Table.from_pandas(feats, preserve_index=False), "synthetic"), truth


def write_ground_truth(truth: pd.DataFrame, path) -> None:
    """The simulator's format: customer_id, churned (true/false), churn_date (empty if not churned)."""
    out = truth[["customer_id", "churned", "churn_date"]].copy()
    out["churned"] = out["churned"].map({True: "true", False: "false"})
    out.to_csv(path, index=False)


def read_ground_truth(path) -> pd.DataFrame:
    """customer_id → churned (bool) from the simulator's churn_ground_truth.csv."""
    df = pd.read_csv(path, dtype={"customer_id": str, "churned": str, "churn_date": str}, keep_default_na=False)
    missing = {"customer_id", "churned"} - set(df.columns)
    if missing:
        raise ContractError(f"{path}: ground truth lacks column(s) {', '.join(sorted(missing))}")
    df["churned"] = df["churned"].str.strip().str.lower().isin(["true", "1", "t", "yes"])
    return df[["customer_id", "churned"]]

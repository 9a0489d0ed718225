"""Score every live customer with the @champion churn model: Iceberg ml.churn_scores, then ClickHouse.

    python -m spark_ml churn-score [--source analytics.churn_features] [--train-if-no-champion]

Per customer (the scoring rows of churn_features: cutoff = the run's snapshot date): the calibrated
p(churn) over the model's horizon, its risk band, the top 3 reasons in words (exact contributions,
spark_ml.churn.compiled / reasons), the expected 12-month value and revenue at risk (revenue.py), and a
next best action. One Iceberg commit per run (snapshot summary `run-id`), then the ClickHouse load as
for the segments: the run's partition is replaced, checked against the Iceberg row count, and only
then registered, so ml.churn_scores_latest always shows one whole run.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa

from spark_ml import lake
from spark_ml.churn import compiled, drift, explain, model, reasons, registry, revenue, training_set

SCORES = "ml.churn_scores"
RUNS = "ml.churn_scoring_runs"
DRIFT = "ml.churn_drift"
KEEP_RUNS = 10

# Next best action: one rule per customer, first match wins (documented in docs/churn_model.md).
ACTIONS = ("win-back offer", "restore previous tier", "retention call", "retention offer", "engagement e-mail",
           "no action")


class ScoreError(RuntimeError):
    pass


def next_best_action(band, lapsed, downgraded, value, high_value: float) -> np.ndarray:
    """lapsed (no session or order within the horizon): win-back; a recent downgrade in a high band:
    restore the tier; high/very high: a call for valuable customers, an offer for the others; medium:
    an engagement e-mail; low: nothing."""
    band = np.asarray(band, dtype=object)
    high = np.isin(band, ["high", "very high"])
    return np.select(
        [lapsed, high & downgraded, high & (value >= high_value), high, band == "medium"],
        list(ACTIONS[:5]), default=ACTIONS[5])


def high_value_threshold(value) -> float:
    """The expected value from which a high-risk customer gets a call: the scored population's upper quartile
    of positive values."""
    value = np.asarray(value, dtype=float)
    positive = value[value > 0]
    return float(np.quantile(positive, 0.75)) if len(positive) else float("inf")


def actions(rows: pd.DataFrame, band, value, horizon_days: int, high_value: float) -> np.ndarray:
    """next_best_action of each row (columns days_since_last_session, recency_days, tier_downgraded_30d).
    The rows may be one object-typed row of the real-time service, whose NULLs are pd.NA: hence to_numeric."""
    since = rows[["days_since_last_session", "recency_days"]].apply(pd.to_numeric, errors="coerce").astype(float)
    since = since.min(axis=1)  # NaN: no session and no order at all
    lapsed = (since.isna() | (since > horizon_days)).to_numpy()
    downgraded = pd.to_numeric(rows.tier_downgraded_30d, errors="coerce").fillna(0).to_numpy() == 1
    return next_best_action(band, lapsed, downgraded, np.asarray(value, dtype=float), high_value)


def _table(rows: pd.DataFrame, p: np.ndarray, top: pd.DataFrame, run_id: str, version: str, model_name: str,
           horizon_days: int) -> pa.Table:
    value = revenue.from_orders(rows.avg_order_value.astype(float), rows.orders_90d.astype(float))
    band = model.risk_band(p).astype(str)
    action = actions(rows, band, value, horizon_days, high_value_threshold(value))
    scored_at = dt.datetime.now(dt.UTC)
    return pa.table({
        "run_id": pa.array([run_id] * len(rows), pa.string()),
        "customer_id": pa.array(rows.customer_id.astype(str), pa.string()),
        "snapshot_date": pa.array(pd.to_datetime(rows.cutoff_date).dt.date, pa.date32()),
        "scored_at": pa.array([scored_at] * len(rows), pa.timestamp("ms", tz="UTC")),
        "model_name": pa.array([model_name] * len(rows), pa.string()),
        "model_version": pa.array([version] * len(rows), pa.string()),
        "p_churn": pa.array(p, pa.float64()),
        "risk_band": pa.array(band, pa.string()),
        **{f"reason_{k}": pa.array(top[f"reason_{k}"].tolist(), pa.string()) for k in range(1, reasons.TOP_K + 1)},
        "expected_value": pa.array(value, pa.float64()),
        "revenue_at_risk": pa.array(revenue.at_risk(p, value), pa.float64()),
        "next_best_action": pa.array(action, pa.string()),
        "country": pa.array(rows.country.astype(str), pa.string()),
        "subscription_tier": pa.array(rows.subscription_tier.astype(str), pa.string()),
    })


def predict_and_explain(fitted, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Calibrated p(churn) and exact contributions of every row of X, through the compiled model (the same
    numbers as predict_proba and explain.contributions, ~100x faster: spark_ml/churn/compiled.py)."""
    fast = compiled.compile(fitted, X.columns)
    p, _, phi = fast.explain_many(explain.margin_model(fitted)._preprocess_X(X, reset=False))
    return p, pd.DataFrame(phi, index=X.index, columns=X.columns)


def _commit_iceberg(data: pa.Table, run_id: str, catalog) -> int:
    from spark_ml import export

    table = export.ensure_table(catalog, data.schema, lake.CHURN_SCORES_TABLE)
    table.append(data, snapshot_properties={"run-id": run_id, "rows": str(data.num_rows)})
    return table.current_snapshot().snapshot_id


def _load_clickhouse(ch, data: pa.Table, run_id: str, summary: dict) -> list[str]:
    ch.command(f"ALTER TABLE {SCORES} DROP PARTITION {{r:String}}", parameters={"r": run_id})
    ch.insert_arrow(SCORES, data)
    got = int(ch.command(f"SELECT count() FROM {SCORES} WHERE run_id = {{r:String}}", parameters={"r": run_id}))
    if got != data.num_rows:
        raise ScoreError(f"{SCORES}: {got} rows for run {run_id} in ClickHouse, {data.num_rows} in Iceberg")
    ch.insert(RUNS, [[run_id, summary["snapshot_date"], data.num_rows, summary["model"], summary["version"],
                      summary["mean_p_churn"], summary["revenue_at_risk"], json.dumps(summary, default=str)]],
              column_names=["run_id", "snapshot_date", "customers", "model_name", "model_version", "mean_p_churn",
                            "revenue_at_risk", "metrics"])
    old = [r[0] for r in ch.query(f"SELECT DISTINCT run_id FROM {RUNS} ORDER BY run_id DESC").result_rows][KEEP_RUNS:]
    for run in old:
        ch.command(f"ALTER TABLE {SCORES} DROP PARTITION {{r:String}}", parameters={"r": run})
        ch.command(f"ALTER TABLE {RUNS} DELETE WHERE run_id = {{r:String}}", parameters={"r": run})
    return old


def _drift(client, churn_model, rows: pd.DataFrame, X: pd.DataFrame, p: np.ndarray, run_id: str, model_name: str,
           version: str) -> tuple[list[dict], int]:
    """PSI/KS of the comparable rows (customers active before the cutoff, as training rows are) against the
    champion's training reference, into ClickHouse. Returns (the features newly over drift.PSI_ALERT: over it
    now and not in this model version's previous scoring run, so a lasting drift is raised once, not every
    six hours; the number over it now)."""
    reference = getattr(churn_model, "reference", None)
    if reference is None:  # a model packaged before drift references existed
        return [], 0
    active = rows["active"].astype(int).to_numpy() == 1
    if not active.any():
        return [], 0
    found = drift.compare(reference, X[active], p[active])
    found.insert(0, "run_id", run_id)
    found.insert(1, "model_name", model_name)
    found.insert(2, "model_version", version)
    found["rows"] = int(active.sum())
    found["alert"] = found.alert.astype("uint8")
    same_model = "model_name = {m:String} AND model_version = {v:String}"
    params = {"m": model_name, "v": version, "r": run_id}
    before = {r[0] for r in client.query(
        f"SELECT feature FROM {DRIFT} WHERE {same_model} AND alert = 1 AND run_id = "
        f"(SELECT max(run_id) FROM {DRIFT} WHERE {same_model} AND run_id < {{r:String}})", parameters=params).result_rows}
    client.insert_df(DRIFT, found)
    over = [r for r in found.itertuples() if r.alert]
    return [{"feature": r.feature, "psi": round(r.psi, 4)} for r in over if r.feature not in before], len(over)


def score(settings, client, source: str = training_set.DEFAULT_SOURCE, model_name: str = registry.MODEL_NAME,
          customer_prefix: str | None = None, catalog=None) -> dict:
    import mlflow

    t0 = time.perf_counter()
    mlclient = registry.connect(settings)
    current = registry.champion(mlclient, model_name)
    if current is None:
        raise ScoreError(f"MLflow model {model_name} has no @{registry.ALIAS}; train one with "
                         "`python -m spark_ml churn-train` (or pass --train-if-no-champion)")
    version = current[0].version
    registry.grant_reader(settings, mlclient, model_name)  # also for a model trained before the service had a login
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}@{registry.ALIAS}")
    churn_model = loaded.unwrap_python_model()
    rows = training_set.read(client, source, training=False, customer_prefix=customer_prefix)
    t_read = time.perf_counter() - t0
    X = training_set.features(rows)
    p, phi = predict_and_explain(churn_model.model, X)
    top = reasons.top_reasons(phi, X)
    t_score = time.perf_counter() - t0 - t_read

    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    data = _table(rows.reset_index(drop=True), p, top, run_id, str(version), model_name, churn_model.horizon_days)
    snapshot_id = _commit_iceberg(data, run_id, catalog or lake.catalog())
    bands = pd.Series(data.column("risk_band").to_pylist()).value_counts().to_dict()
    summary = {"run_id": run_id, "model": model_name, "version": str(version), "customers": data.num_rows,
               "snapshot_date": data.column("snapshot_date")[0].as_py(), "mean_p_churn": float(p.mean()),
               "revenue_at_risk": float(np.sum(data.column("revenue_at_risk"))), "risk_bands": bands,
               "iceberg_snapshot": snapshot_id}
    dropped = _load_clickhouse(client, data, run_id, summary)
    summary["drift_alerts"], summary["drift_over_threshold"] = _drift(client, churn_model, rows, X, p, run_id,
                                                                      model_name, str(version))
    summary["timings"] = {"read_s": round(t_read, 2), "score_s": round(t_score, 2),
                          "total_s": round(time.perf_counter() - t0, 2)}
    summary["dropped_runs"] = dropped
    return summary


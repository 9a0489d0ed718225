"""Real-time churn scoring of one customer: the batch's features brought up to date with what happened since.

The pipeline's scoring rows (churn_features, cutoff C = its snapshot date) hold every live customer's
features as of the batch; the batch read the mirror up to its newest web event T_web and order T_order.
A request adds the customer's activity after those instants, read from PostgreSQL raw.* (what the
stream job has written, seconds old), and scores the result with the same @champion the batch used:

- new sessions: sessions whose first event is after T_web (a session the batch already saw, still going
  on, is not counted twice); new completed orders, their revenue, cancellations and refunds after T_order;
- the features' day R = max(C, the day after the customer's newest new activity): a customer active
  today is seen as of tomorrow, like the batch's snapshot date (the day after the newest event); every
  day-count feature moves by R − C, the day-since features restart from the new activity;
- the count windows (7, 30, 90 days) add the new activity and are not slid by R − C: in steady
  operation R − C is 0 or 1 (the pipeline runs every 6 hours), and the next batch recounts them exactly;
- attributes (tier, country, channel) are the batch's.

A customer with nothing new is scored exactly as the batch scored them. `Snapshot` is one immutable
load (model + rows); the service swaps in a new one when the champion or the scoring rows change.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd

from spark_ml.churn import compiled, model, reasons, registry, revenue, training_set
from spark_ml.churn.score import actions, high_value_threshold

DAY_FEATURES = ("days_since_last_session", "days_since_last_login", "recency_days")

# One round trip per request, on the (customer_id, time) indexes of raw.*.
ACTIVITY_SQL = """
WITH web AS (
    SELECT session_id, event_type, event_time FROM raw.web_events
    WHERE customer_id = %(c)s AND event_time > %(t_web)s
), new_sessions AS (
    SELECT session_id, min(event_time) AS started FROM web
    WHERE NOT EXISTS (SELECT 1 FROM raw.web_events w WHERE w.customer_id = %(c)s
                      AND w.session_id = web.session_id AND w.event_time <= %(t_web)s)
    GROUP BY session_id
), orders AS (
    SELECT order_time, order_status, total_amount FROM raw.purchase_events
    WHERE customer_id = %(c)s AND order_time > %(t_order)s
)
SELECT
    (SELECT count(*) FROM new_sessions),
    (SELECT max(started) FROM new_sessions),
    (SELECT max(event_time) FROM web WHERE event_type = 'login'),
    (SELECT count(*) FROM orders WHERE order_status = 'completed'),
    (SELECT coalesce(sum(total_amount), 0) FROM orders WHERE order_status = 'completed'),
    (SELECT max(order_time) FROM orders WHERE order_status = 'completed'),
    (SELECT count(*) FROM orders WHERE order_status = 'cancelled'),
    (SELECT count(*) FROM orders WHERE order_status = 'refunded'),
    (SELECT max(order_time) FROM orders)
"""


class UnknownCustomer(KeyError):
    pass


@dataclasses.dataclass(frozen=True)
class Activity:
    """A customer's activity after the batch's cutoff instants."""
    sessions: int = 0
    last_session: dt.datetime | None = None
    last_login: dt.datetime | None = None
    completed_orders: int = 0
    revenue: float = 0.0
    last_completed_order: dt.datetime | None = None
    cancelled: int = 0
    refunded: int = 0
    last_order: dt.datetime | None = None

    @property
    def newest(self) -> dt.datetime | None:
        times = [t for t in (self.last_session, self.last_login, self.last_order) if t is not None]
        return max(times) if times else None


def read_activity(conn, customer_id: str, t_web: dt.datetime, t_order: dt.datetime) -> Activity:
    with conn.cursor() as cur:  # a psycopg2 connection
        cur.execute(ACTIVITY_SQL, {"c": customer_id, "t_web": t_web, "t_order": t_order})
        row = cur.fetchone()
    return Activity(int(row[0]), row[1], row[2], int(row[3]), float(row[4]), row[5], int(row[6]), int(row[7]),
                    row[8])


def updated_features(row: pd.Series, cutoff: dt.date, activity: Activity) -> tuple[pd.Series, dt.date]:
    """The batch row brought up to date with `activity` (module docstring); returns it and its day R."""
    new = row.copy()
    newest = activity.newest
    if newest is None:
        return new, cutoff
    as_of = max(cutoff, newest.astimezone(dt.UTC).date() + dt.timedelta(days=1))
    shift = (as_of - cutoff).days
    new["tenure_days"] = row["tenure_days"] + shift
    for feature in DAY_FEATURES:  # NULL (never) stays NULL unless there is new activity of its kind
        new[feature] = row[feature] + shift if pd.notna(row[feature]) else row[feature]
    for feature, last in (("days_since_last_session", activity.last_session),
                          ("days_since_last_login", activity.last_login),
                          ("recency_days", activity.last_completed_order)):
        if last is not None:
            new[feature] = (as_of - last.astimezone(dt.UTC).date()).days
    for window in ("sessions_7d", "sessions_30d", "sessions_90d"):
        new[window] = row[window] + activity.sessions
    for window in ("orders_30d", "orders_90d", "frequency"):
        new[window] = row[window] + activity.completed_orders
    new["revenue_90d"] = row["revenue_90d"] + activity.revenue
    new["monetary"] = row["monetary"] + activity.revenue
    new["avg_order_value"] = new["monetary"] / new["frequency"] if new["frequency"] > 0 else np.nan
    new["cancellations_90d"] = row["cancellations_90d"] + activity.cancelled
    new["refunds_90d"] = row["refunds_90d"] + activity.refunded
    new["activity_trend"] = (new["sessions_7d"] + 1) / (new["sessions_30d"] * 7 / 30 + 1)
    new["active"] = 1
    return new, as_of


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The @champion and the batch's scoring rows, loaded together."""
    model_name: str
    version: str
    churn_model: object          # spark_ml.churn.pyfunc.ChurnModel
    compiled: compiled.CompiledModel  # the same model as arrays: p and exact contributions in ~4 ms
    rows: pd.DataFrame           # scoring rows, indexed by customer_id
    cutoff: dt.date              # the rows' cutoff (the batch's snapshot date)
    t_web: dt.datetime           # the batch's newest web event
    t_order: dt.datetime         # the batch's newest order
    high_value: float            # expected value from which a high-risk customer gets a call (score.py)
    loaded_at: float
    key: tuple                   # what identifies this load: a change reloads

    def score(self, customer_id: str, activity: Activity) -> dict:
        if customer_id not in self.rows.index:
            raise UnknownCustomer(customer_id)
        row, as_of = updated_features(self.rows.loc[customer_id], self.cutoff, activity)
        x = model_input(row)
        p, _, phi = self.compiled.explain(self.compiled.encode(x))
        order = np.argsort(-phi, kind="stable")[:reasons.TOP_K]  # as reasons.top_reasons, for one customer
        top = [reasons.phrase(training_set.FEATURES[c], x[training_set.FEATURES[c]]) for c in order
               if phi[c] > reasons.MIN_CONTRIBUTION]
        value = float(revenue.from_orders([row["avg_order_value"]], [row["orders_90d"]])[0])
        band = str(model.risk_band([p])[0])
        action = actions(row.to_frame().T, [band], [value], self.churn_model.horizon_days, self.high_value)[0]
        return {
            "customer_id": customer_id,
            "p_churn": p,
            "risk_band": band,
            "reasons": top,
            "expected_value": value,
            "revenue_at_risk": p * value,
            "next_best_action": str(action),
            "model_name": self.model_name,
            "model_version": self.version,
            "horizon_days": self.churn_model.horizon_days,
            "features_as_of": as_of.isoformat(),
            "batch_cutoff": self.cutoff.isoformat(),
            "new_sessions": activity.sessions,
            "new_orders": activity.completed_orders,
            "features": {f: _plain(row[f]) for f in training_set.FEATURES},
        }


def model_input(row: pd.Series) -> dict:
    """One row's features as training_set.features() types them: numbers as float (NULL → NaN), text as
    str (NULL → "unknown")."""
    x = {}
    for f in training_set.NUMERIC:
        x[f] = np.nan if row[f] is None or pd.isna(row[f]) else float(row[f])
    for f in training_set.CATEGORICAL:
        x[f] = "unknown" if row[f] is None or pd.isna(row[f]) else str(row[f])
    return x


def _plain(value):
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return None if pd.isna(value) else str(value)


def source_key(ch, source: str) -> tuple:
    """What changes when the pipeline rebuilds the scoring rows: their count, cutoff and the batch's instants."""
    schema = source.split(".")[0]
    rows = ch.query(f"SELECT count(), max(cutoff_date) FROM {source} WHERE is_training = 0").result_rows[0]
    t_web = ch.query(f"SELECT max(event_time) FROM {schema}.stg_web_events").result_rows[0][0]
    t_order = ch.query(f"SELECT max(order_time) FROM {schema}.stg_purchase_events").result_rows[0][0]
    return (int(rows[0]), rows[1], _utc(t_web), _utc(t_order))


def _utc(value) -> dt.datetime:
    if value is None:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def load(settings, ch, source: str, model_name: str) -> Snapshot | None:
    """The champion and the scoring rows of `source`, or None when there is no champion yet."""
    import mlflow

    client = registry.connect(settings, reader=True)
    current = registry.champion(client, model_name)
    if current is None:
        return None
    version = str(current[0].version)
    key = (version, *source_key(ch, source))
    churn_model = mlflow.pyfunc.load_model(f"models:/{model_name}@{registry.ALIAS}").unwrap_python_model()
    rows = training_set.read(ch, source, training=False).set_index("customer_id", drop=False)
    value = revenue.from_orders(rows.avg_order_value.astype(float), rows.orders_90d.astype(float))
    return Snapshot(model_name=model_name, version=version, churn_model=churn_model,
                    compiled=compiled.compile(churn_model.model, training_set.FEATURES), rows=rows,
                    cutoff=pd.Timestamp(rows.cutoff_date.iloc[0]).date(), t_web=key[3], t_order=key[4],
                    high_value=high_value_threshold(value),
                    loaded_at=time.time(), key=key)

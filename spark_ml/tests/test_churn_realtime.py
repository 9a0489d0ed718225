"""spark_ml.churn.realtime and .compiled: a batch row brought up to date with the activity since the batch, and
the one-customer scoring that must equal the batch's (no service)."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from spark_ml.churn import compiled, explain, model, realtime, score, training_set

pytestmark = pytest.mark.unit

CUTOFF = dt.date(2026, 11, 20)   # the batch's snapshot date: its features read days < 20 Nov


def _row(**changes) -> pd.Series:
    row = dict.fromkeys(training_set.NUMERIC, 0)
    row.update(customer_id="c1", cutoff_date=CUTOFF, active=1, subscription_tier="basic", country="DE",
               acquisition_channel="organic", tenure_days=100, sessions_7d=2, sessions_30d=6, sessions_90d=15,
               activity_trend=3 / (6 * 7 / 30 + 1), days_since_last_session=3.0, days_since_last_login=np.nan,
               orders_30d=1, orders_90d=2, revenue_90d=80.0, frequency=4, monetary=200.0, avg_order_value=50.0,
               recency_days=12.0, cancellations_90d=0, refunds_90d=1)
    row.update(changes)
    return pd.Series(row)


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def test_no_new_activity_leaves_the_batch_row_as_it_is():
    row = _row()
    new, as_of = realtime.updated_features(row, CUTOFF, realtime.Activity())
    assert as_of == CUTOFF
    pd.testing.assert_series_equal(new, row)


def test_activity_on_the_batch_cutoff_day_moves_the_row_one_day_on():
    # a session and a login on 20 Nov (on or after the cutoff): as of 21 Nov, everything a day older
    activity = realtime.Activity(sessions=1, last_session=_at(CUTOFF), last_login=_at(CUTOFF, 11))
    new, as_of = realtime.updated_features(_row(), CUTOFF, activity)
    assert as_of == CUTOFF + dt.timedelta(days=1)
    assert new["tenure_days"] == 101
    assert new["days_since_last_session"] == 1 and new["days_since_last_login"] == 1
    assert new["recency_days"] == 13                       # no new order: a day older
    assert (new["sessions_7d"], new["sessions_30d"], new["sessions_90d"]) == (3, 7, 16)
    assert new["activity_trend"] == pytest.approx(4 / (7 * 7 / 30 + 1))
    assert (new["orders_30d"], new["frequency"], new["monetary"]) == (1, 4, 200.0)


def test_a_session_before_midnight_of_the_batch_day_keeps_the_cutoff():
    # the batch ran at 06:00 on 19 Nov (snapshot date 20 Nov); a session at 18:00 the same day
    day = CUTOFF - dt.timedelta(days=1)
    new, as_of = realtime.updated_features(_row(), CUTOFF, realtime.Activity(sessions=1, last_session=_at(day, 18)))
    assert as_of == CUTOFF and new["tenure_days"] == 100
    assert new["days_since_last_session"] == 1 and new["sessions_7d"] == 3
    assert math.isnan(new["days_since_last_login"])      # never logged in: still never


def test_new_orders_update_counts_revenue_and_average():
    activity = realtime.Activity(completed_orders=2, revenue=100.0, last_completed_order=_at(CUTOFF),
                                 cancelled=1, last_order=_at(CUTOFF, 12))
    new, as_of = realtime.updated_features(_row(), CUTOFF, activity)
    assert as_of == CUTOFF + dt.timedelta(days=1)
    assert (new["orders_30d"], new["orders_90d"], new["frequency"]) == (3, 4, 6)
    assert (new["revenue_90d"], new["monetary"]) == (180.0, 300.0)
    assert new["avg_order_value"] == pytest.approx(50.0)
    assert new["recency_days"] == 1 and new["cancellations_90d"] == 1 and new["refunds_90d"] == 1
    assert new["days_since_last_session"] == 4            # no new session: a day older


def test_the_first_completed_order_sets_the_average_order_value():
    row = _row(frequency=0, monetary=0.0, avg_order_value=np.nan, recency_days=np.nan, orders_30d=0, orders_90d=0)
    activity = realtime.Activity(completed_orders=1, revenue=42.5, last_completed_order=_at(CUTOFF),
                                 last_order=_at(CUTOFF))
    new, _ = realtime.updated_features(row, CUTOFF, activity)
    assert new["avg_order_value"] == pytest.approx(42.5) and new["recency_days"] == 1


def test_the_compiled_model_scores_and_explains_exactly_as_the_model_does():
    """compiled.explain (one customer, arrays) against predict_proba and explain.contributions (the batch's
    path), on a calibrated model fitted with the platform's parameters on rows with every feature type,
    missing values and a category the model never saw."""
    rng = np.random.default_rng(7)
    n = 4_000
    rows = pd.DataFrame({f: rng.poisson(5, n).astype(float) for f in training_set.NUMERIC})
    rows["days_since_last_session"] = np.where(rng.random(n) < 0.1, np.nan, rng.exponential(8, n).round())
    rows["subscription_tier"] = rng.choice(["free", "basic", "premium"], n)
    rows["country"] = rng.choice(["DE", "FR", "US", "SE"], n)
    rows["acquisition_channel"] = rng.choice(["organic", "paid", "referral"], n)
    logit = (0.15 * np.nan_to_num(rows.days_since_last_session, nan=30) - 0.3 * rows.sessions_7d
             + (rows.subscription_tier == "free") * 0.8 - 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = training_set.features(rows)
    fitted = model.calibrate(model.gbt(seed=1).fit(X[:3000], y[:3000]), X[3000:], y[3000:])

    test = rows.iloc[:200].copy()
    test.loc[test.index[0], "country"] = "ZZ"  # unseen in training
    test.loc[test.index[1], "subscription_tier"] = None
    Xt = training_set.features(test)
    base, phi = explain.contributions(fitted, Xt)
    p = fitted.predict_proba(Xt)[:, 1]
    cm = compiled.compile(fitted, training_set.FEATURES)
    for i in range(len(test)):
        got_p, margin, got_phi = cm.explain(cm.encode(realtime.model_input(test.iloc[i])))
        assert got_p == pytest.approx(p[i], abs=1e-12)
        assert np.abs(got_phi - phi.iloc[i].to_numpy()).max() < 1e-12
        assert margin == pytest.approx(base + phi.iloc[i].sum(), abs=1e-12)
    # many rows at once (the batch's path), from the model's own encoding
    many_p, many_margin, many_phi = cm.explain_many(explain.margin_model(fitted)._preprocess_X(Xt, reset=False))
    assert np.abs(many_p - p).max() < 1e-12 and np.abs(many_phi - phi.to_numpy()).max() < 1e-12
    assert np.abs(many_margin - (base + phi.sum(axis=1).to_numpy())).max() < 1e-12


def test_the_action_of_one_object_row_with_clickhouse_nulls_equals_the_batchs():
    """The service hands score.actions one row of mixed types whose NULLs are pd.NA (clickhouse-connect's
    nullable columns); the batch hands it typed columns. Both give the same action (a 500 in CI before)."""
    typed = pd.DataFrame({"days_since_last_session": pd.array([pd.NA, 40, pd.NA, 2], dtype="Float64"),
                          "recency_days": pd.array([pd.NA, pd.NA, 5, pd.NA], dtype="Float64"),
                          "tier_downgraded_30d": pd.array([0, 0, 1, 0], dtype="UInt8"),
                          "country": ["DE", "FR", "DE", "US"]})
    band, value = ["high", "high", "high", "medium"], [10.0, 10.0, 500.0, 10.0]
    batch = score.actions(typed, band, value, 30, 100.0)
    one = [score.actions(typed.iloc[i].to_frame().T, [band[i]], [value[i]], 30, 100.0)[0] for i in range(4)]
    assert list(batch) == one == [score.ACTIONS[0], score.ACTIONS[0], score.ACTIONS[1], score.ACTIONS[4]]

"""The churn model's point-in-time rows (dbt model churn_features) read nothing at or after their cutoff.

Two isolated CDC mirrors built from one simulated population (tests/support/cdc_mirror.py): the whole
history, and the same history cut at a training cutoff C (events and orders before C, customer versions
changed before C; tombstones kept in both). churn_features is built from each with the same snapshot
date, so both have the same cutoffs. Every feature of every row at cutoff C must be equal in the two
builds: a feature that read anything from C on would differ. The labels must differ (they are what
looks after C), and in the cut mirror every row at C is labelled churned (nothing happens after C).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import pandas as pd
import pytest

from platform_common import clients
from platform_common.config import REPO
from tests.support import cdc_mirror as m

pytestmark = pytest.mark.integration

CUSTOMERS, DAYS, SEED = 300, 60, 7
FEATURES = ["tenure_days", "sessions_7d", "sessions_30d", "sessions_90d", "activity_trend", "days_since_last_session",
            "days_since_last_login", "orders_30d", "orders_90d", "revenue_90d", "frequency", "monetary",
            "avg_order_value", "recency_days", "cancellations_90d", "refunds_90d", "tier_downgraded_30d",
            "tier_upgraded_30d", "subscription_tier", "country", "acquisition_channel", "active"]


def _before(rows: list[list], cols: list[str], time_col: str, cutoff: dt.datetime) -> list[list]:
    """Rows whose time is before the cutoff, and every tombstone (they carry no time)."""
    t, deleted = cols.index(time_col), cols.index("_is_deleted")
    return [r for r in rows if r[deleted] == 1 or r[t] < cutoff]


@pytest.fixture(scope="module")
def builds(stack_up, tmp_path_factory):
    client = clients.clickhouse(stack_up)
    tag = uuid.uuid4().hex[:8]
    full_db, cut_db, full, cut = f"cdc_itc_{tag}", f"cdc_itc_{tag}_cut", f"dbt_itc_{tag}", f"dbt_itc_{tag}_cut"
    tmp = tmp_path_factory.mktemp("churn")
    try:
        sim, _ = m.simulate(CUSTOMERS, DAYS, seed=SEED)
        snapshot = (sim.end + dt.timedelta(days=1)).date()
        cutoff = snapshot - dt.timedelta(days=40)  # a training cutoff (30-day horizon, daily cutoffs)
        c = dt.datetime.combine(cutoff, dt.time(), tzinfo=dt.UTC)
        rows = sim.rows
        m.create_mirror(client, full_db)
        rows.insert(client, full_db)
        m.create_mirror(client, cut_db)
        m.MirrorRows(_before(rows.customers, m.CUSTOMER_COLS, "updated_at", c),
                     _before(rows.web, m.WEB_COLS, "event_time", c),
                     _before(rows.orders, m.ORDER_COLS, "order_time", c)).insert(client, cut_db)
        frames = {}
        for schema, db in ((full, full_db), (cut, cut_db)):
            result = subprocess.run(
                [sys.executable, str(REPO / "dbt" / "run.py"), "run", "--select", "+churn_features",
                 "--vars", json.dumps({"cdc_database": db, "snapshot_date": snapshot.isoformat()}),
                 "--target-path", str(tmp / schema / "target"), "--log-path", str(tmp / schema / "logs")],
                capture_output=True, text=True, env={**os.environ, "DBT_TARGET_SCHEMA": schema}, timeout=600, cwd=REPO)
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
            frames[schema] = client.query_df(f"SELECT * FROM {schema}.churn_features ORDER BY cutoff_date, customer_id")
        yield frames[full], frames[cut], cutoff, snapshot
    finally:
        for db in (full_db, cut_db, full, cut):
            client.command(f"DROP DATABASE IF EXISTS {db}")


def test_no_feature_reads_data_at_or_after_its_cutoff(builds):
    full, cut, cutoff, _ = builds
    at = pd.Timestamp(cutoff)
    a = full[full.cutoff_date == at].set_index("customer_id")
    b = cut[cut.cutoff_date == at].set_index("customer_id")
    assert len(a) > 150 and a.index.equals(b.index)
    pd.testing.assert_frame_equal(a[FEATURES], b[FEATURES], check_exact=False, rtol=1e-12)
    assert (b.churned == 1).all()                       # nothing happens after C in the cut mirror
    assert 0.02 < (a.churned == 1).mean() < 0.5         # the full history: only some of them leave

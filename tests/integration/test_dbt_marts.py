"""The dbt project (dbt/) against the platform's ClickHouse, on an isolated CDC mirror.

The streaming path that fills `cdc` is not involved: the test creates `cdc_it_<id>` with the
migration's table DDL, fills it with mirror rows built from the simulators (customer versions with
updates and deletes, events, orders with later status changes, replayed rows, a deleted order),
and builds into a fresh target schema `dbt_it_<id>` (`--vars {cdc_database: ...}`). Every number
asserted is recomputed in pandas from the inserted rows (tests/support/cdc_mirror.py).

Scenario (one module fixture, several assertions):
  build 1 (full) -> build 2 (nothing new: incremental, must change nothing)
  -> tamper two columns of one unaffected customer (a marker: a recomputed row would lose it)
  -> new rows: a new converting session + order for customer X, a refund of customer Y's order,
     customer Z deleted, customer W's tier changed, a late event before one session's start
  -> build 3 (incremental: X, Y, Z, W and the touched days are recomputed over full history)
  -> a full build of the same mirror into a second schema: identical tables.
  -> the PII test on a leaked e-mail, and the mirror reconciliation on a duplicated event: both fail.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import re
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

from platform_common import clients
from platform_common.config import REPO
from tests.support import cdc_mirror as m

pytestmark = pytest.mark.integration

RUNNER = REPO / "dbt" / "run.py"
DBT = REPO / ".tools" / "venvs" / "dbt" / "bin" / "dbt"
TABLES = ["int_sessions", "int_customer_web_activity", "int_customer_orders", "int_customer_rfm",
          "customer_features", "dim_customers", "fct_daily_funnel", "fct_daily_kpis", "fct_monthly_acquisition",
          "fct_country_performance"]
KEYS = {"int_sessions": "session_id", "int_customer_web_activity": "customer_id",
        "int_customer_orders": "customer_id", "int_customer_rfm": "customer_id",
        "customer_features": "(customer_id, snapshot_date)", "dim_customers": "customer_id",
        "fct_daily_funnel": "(session_date, country, device_type, acquisition_channel)",
        "fct_daily_kpis": "kpi_date", "fct_monthly_acquisition": "(signup_month, acquisition_channel)",
        "fct_country_performance": "country"}
CUSTOMERS, DAYS, SEED = 300, 60, 42
NEW_ORDER_AMOUNT = "123.45"


def dbt(settings, schema: str, cdc_db: str, tmp_path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DBT_TARGET_SCHEMA": schema}
    variables = json.dumps({"cdc_database": cdc_db, "watermark_lookback_seconds": 0})
    result = subprocess.run([sys.executable, str(RUNNER), *args, "--vars", variables,
                             "--target-path", str(tmp_path / schema / "target"),
                             "--log-path", str(tmp_path / schema / "logs")],
                            capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    if check:
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return result


def checksums(client, schema: str) -> dict[str, tuple[int, int]]:
    """(rows, order-independent hash of every row) per model table."""
    return {t: tuple(client.query(f"SELECT count(), sum(cityHash64(*)) FROM {schema}.{t}").result_rows[0])
            for t in TABLES}


def duplicates(client, schema: str) -> dict[str, int]:
    return {t: client.query(f"SELECT count() - uniqExact({KEYS[t]}) FROM {schema}.{t}").result_rows[0][0]
            for t in TABLES}


def frame(client, sql: str) -> pd.DataFrame:
    df = client.query_df(sql)
    for col in ("kpi_date", "session_date", "snapshot_date", "signup_date"):   # Date columns as datetime.date
        if col in df.columns:
            df[col] = [v.date() if hasattr(v, "date") else v for v in df[col]]
    return df


@pytest.fixture(scope="module")
def scenario(stack_up, tmp_path_factory):
    assert DBT.exists(), "dbt environment missing: run `make setup`"
    client = clients.clickhouse(stack_up)
    tag = uuid.uuid4().hex[:8]
    cdc_db, schema, schema_full = f"cdc_it_{tag}", f"dbt_it_{tag}", f"dbt_it_{tag}_full"
    tmp_path = tmp_path_factory.mktemp("dbt")
    out: dict = {"client": client, "schema": schema, "cdc": cdc_db}
    try:
        m.create_mirror(client, cdc_db)
        sim, builder = m.simulate(CUSTOMERS, DAYS, seed=SEED)
        rows = sim.rows
        rows.insert(client, cdc_db)
        out["rows1"] = m.MirrorRows(list(rows.customers), list(rows.web), list(rows.orders))

        # build 1 (full) and build 2 (incremental, nothing new)
        r1 = dbt(stack_up, schema, cdc_db, tmp_path, "build")
        out["build1_stdout"] = r1.stdout
        out["features1"] = frame(client, f"SELECT * FROM {schema}.customer_features ORDER BY customer_id")
        out["rfm1"] = frame(client, f"SELECT * FROM {schema}.int_customer_rfm ORDER BY customer_id")
        out["sessions1"] = frame(client, f"SELECT * FROM {schema}.int_sessions ORDER BY session_id")
        out["kpis1"] = frame(client, f"SELECT * FROM {schema}.fct_daily_kpis ORDER BY kpi_date")
        out["funnel1"] = frame(client, f"SELECT * FROM {schema}.fct_daily_funnel")
        out["dim1"] = frame(client, f"SELECT * FROM {schema}.dim_customers ORDER BY customer_id")
        out["snapshot1"] = client.query(f"SELECT snapshot_date FROM {schema}.dbt_run_state "
                                        "ORDER BY started_at DESC LIMIT 1").result_rows[0][0]
        out["sums1"] = checksums(client, schema)
        # the two tables built without background merges: their engine after the run, and the build's DDL
        out["engines1"] = dict(client.query(f"SELECT name, engine_full FROM system.tables WHERE database = '{schema}' "
                                            "AND name IN ('stg_web_events', 'int_sessions')").result_rows)
        log = (tmp_path / schema / "logs" / "dbt.log").read_text()
        out["ddls1"] = {t: re.search(rf"create table `{schema}`.`{t}`.*?SETTINGS[^\n]*", log, re.S).group(0)
                        for t in ("stg_web_events", "int_sessions")}
        r2 = dbt(stack_up, schema, cdc_db, tmp_path, "build")
        out["build2_stdout"] = r2.stdout
        out["sums2"] = checksums(client, schema)
        out["dups2"] = duplicates(client, schema)

        # pick the customers the new rows are about (deterministically)
        live = rows.live_customers().set_index("customer_id", drop=False)
        snapshot = out["snapshot1"]
        orders = rows.live_orders()
        completed = orders[orders["order_status"] == "completed"]
        buyers = sorted(set(completed["customer_id"]) & set(live.index[live["signup_date"] < snapshot]))
        web = rows.live_web()
        active = sorted(set(web["customer_id"]) & set(buyers))
        x, y, z, w, u = active[0], active[1], active[2], active[3], active[-1]
        out["who"] = {"X": x, "Y": y, "Z": z, "W": w, "U": u}
        new_day = snapshot - dt.timedelta(days=3)
        y_order = completed[completed["customer_id"] == y].sort_values("order_id").iloc[0]
        y_row = next(r for r in rows.orders if str(r[0]) == y_order["order_id"] and r[m.ORDER_COLS.index("_is_deleted")] == 0
                     and r[m.ORDER_COLS.index("order_status")] == "completed")
        # a session of a fifth customer gets an event 90 s before its start (late, out of order)
        late_sid = sorted(set(web.loc[~web["customer_id"].isin([x, y, z, w, u]), "session_id"]))[0]
        first_event = web[web["session_id"] == late_sid].sort_values("event_time").iloc[0]
        first_row = next(r for r in rows.web if str(r[0]) == first_event["event_id"])
        out["late_session"] = late_sid
        out["y_order"] = y_order
        # deletes in raw.* (by hand: the stream job never deletes): an event of another session and an
        # order of another customer. The incremental run finds their session / customer / day through
        # the earlier version of the row, so merges of the mirror are held until the run has read it
        # (after a merge only the tombstone, which carries just the key, would be left: dbt/README.md).
        others = web[~web["customer_id"].isin([x, y, z, w, u]) & (web["session_id"] != late_sid)]
        multi = others.groupby("session_id").size()
        del_sid = sorted(multi[multi >= 3].index)[0]
        del_event = web[web["session_id"] == del_sid].sort_values("event_time").iloc[-1]
        late_customer = set(web.loc[web["session_id"] == late_sid, "customer_id"])
        v = sorted((set(buyers) - {x, y, z, w, u}) - late_customer)[0]
        v_order = completed[completed["customer_id"] == v].sort_values("order_id").iloc[0]
        out["who"]["V"] = v
        out["deleted_event_session"] = del_sid
        out["v_order"] = v_order
        for table in ("raw_web_events", "raw_purchase_events"):
            client.command(f"SYSTEM STOP MERGES {cdc_db}.{table}")

        # marker: two columns of U that no test and no downstream model read
        client.command(f"ALTER TABLE {schema}.int_customer_orders UPDATE items_purchased = items_purchased + 1000 "
                       f"WHERE customer_id = '{u}' SETTINGS mutations_sync = 2")
        client.command(f"ALTER TABLE {schema}.customer_features UPDATE cancellations = cancellations + 1000 "
                       f"WHERE customer_id = '{u}' SETTINGS mutations_sync = 2")
        out["u_before"] = frame(client, f"SELECT items_purchased FROM {schema}.int_customer_orders "
                                        f"WHERE customer_id = '{u}'")["items_purchased"].iloc[0]

        new = m.new_session(builder, live.loc[x], new_day, NEW_ORDER_AMOUNT)
        new.orders.append(m.order_status_change(builder, y_row, "refunded"))
        t_change = dt.datetime.combine(snapshot - dt.timedelta(days=1), dt.time(8), dt.UTC)
        new.customers.append(m.customer_change(builder, live.loc[z], t_change, delete=True))
        new_tier = "premium" if live.loc[w, "subscription_tier"] != "premium" else "basic"
        out["w_tier"] = new_tier
        new.customers.append(m.customer_change(builder, live.loc[w], t_change, subscription_tier=new_tier))
        new.web.append(m.late_event(builder, first_row, 90))
        new.web.append(builder.web_tombstone(del_event["event_id"]))
        new.orders.append(builder.order_tombstone(v_order["order_id"]))
        new.insert(client, cdc_db)
        rows.extend(new)
        out["rows3"] = rows

        # build 3 (incremental, with the new rows)
        r3 = dbt(stack_up, schema, cdc_db, tmp_path, "build")
        out["build3_stdout"] = r3.stdout
        out["features3"] = frame(client, f"SELECT * FROM {schema}.customer_features ORDER BY customer_id")
        out["orders3"] = frame(client, f"SELECT * FROM {schema}.int_customer_orders ORDER BY customer_id")
        out["kpis3"] = frame(client, f"SELECT * FROM {schema}.fct_daily_kpis ORDER BY kpi_date")
        out["sessions3"] = frame(client, f"SELECT * FROM {schema}.int_sessions ORDER BY session_id")
        out["funnel3"] = frame(client, f"SELECT * FROM {schema}.fct_daily_funnel")
        out["dim3"] = frame(client, f"SELECT * FROM {schema}.dim_customers ORDER BY customer_id")
        out["u_after_orders"] = frame(client, f"SELECT items_purchased FROM {schema}.int_customer_orders "
                                              f"WHERE customer_id = '{u}'")["items_purchased"].iloc[0]
        out["dups3"] = duplicates(client, schema)

        # undo the marker, then compare everything with a full build of the same mirror
        client.command(f"ALTER TABLE {schema}.int_customer_orders UPDATE items_purchased = items_purchased - 1000 "
                       f"WHERE customer_id = '{u}' SETTINGS mutations_sync = 2")
        client.command(f"ALTER TABLE {schema}.customer_features UPDATE cancellations = cancellations - 1000 "
                       f"WHERE customer_id = '{u}' SETTINGS mutations_sync = 2")
        out["sums3"] = checksums(client, schema)
        dbt(stack_up, schema_full, cdc_db, tmp_path, "run")
        out["sums_full"] = checksums(client, schema_full)

        # the PII test fails when something shaped like an e-mail shows up in the schema
        client.command(f"CREATE TABLE {schema}.leak (note String) ENGINE = MergeTree ORDER BY tuple()")
        client.insert(f"{schema}.leak", [["contact: jane.doe@example.com"]], column_names=["note"])
        leak = dbt(stack_up, schema, cdc_db, tmp_path, "test", "-s", "assert_no_raw_email_in_any_model", check=False)
        out["leak"] = leak
        client.command(f"DROP TABLE {schema}.leak")

        out["freshness"] = dbt(stack_up, schema, cdc_db, tmp_path, "source", "freshness", check=False)
        docs = dbt(stack_up, schema, cdc_db, tmp_path, "docs", "generate")
        out["catalog"] = json.loads((tmp_path / schema / "target" / "catalog.json").read_text())
        out["docs"] = docs

        # stg_web_events has no `unique` test: the reconciliation with the mirror must catch a duplicate
        client.command(f"INSERT INTO {schema}.stg_web_events SELECT * FROM {schema}.stg_web_events "
                       f"ORDER BY event_id LIMIT 1")
        out["duplicate"] = dbt(stack_up, schema, cdc_db, tmp_path, "test", "-s", "assert_stg_web_events_match_mirror",
                               check=False)
        yield out
    finally:
        for db in (schema, schema_full, cdc_db):
            client.command(f"DROP DATABASE IF EXISTS {db}")


def test_build_passes_every_test_twice(scenario):
    for key in ("build1_stdout", "build2_stdout", "build3_stdout"):
        stdout = scenario[key]
        assert "ERROR=0" in stdout and "WARN=0" in stdout and "SKIP=0" in stdout, stdout[-3000:]
    # unit tests (session funnel, RFM scores) ran in the build
    assert "int_sessions::int_sessions_funnel_and_conversion" in scenario["build1_stdout"]
    assert "int_customer_rfm::int_customer_rfm_scores" in scenario["build1_stdout"]


def test_first_build_matches_the_inserted_rows(scenario):
    rows: m.MirrorRows = scenario["rows1"]
    live = rows.live_customers()
    snapshot = scenario["snapshot1"]
    # the default snapshot: the day after the newest event, order or signup
    assert snapshot == m.default_snapshot(rows)
    # customers: deleted ones gone, one row per live customer (all signed up before the snapshot)
    dim = scenario["dim1"]
    assert sorted(dim["customer_id"]) == sorted(live["customer_id"])
    deleted = {r[0] for r in rows.customers if r[m.CUSTOMER_COLS.index("_is_deleted")] == 1}
    assert deleted and not deleted & set(dim["customer_id"])
    # customer_features: every column of every customer, as pandas computes it
    expected = m.expected_features(rows, snapshot).sort_values("customer_id").reset_index(drop=True)
    assert_frames_equal(scenario["features1"], expected)
    # RFM of every customer, scores included
    rfm_exp = m.expected_rfm(rows, snapshot).sort_index()
    rfm = scenario["rfm1"].set_index("customer_id")
    for col in ("tenure_days", "recency_days", "frequency", "r_score", "f_score", "m_score"):
        assert rfm[col].astype(int).tolist() == rfm_exp[col].astype(int).tolist(), col
    assert np.allclose(rfm["monetary"], rfm_exp["monetary"])
    # revenue and orders per day
    kpis_exp = m.expected_daily_kpis(rows)
    kpis = scenario["kpis1"]
    assert kpis["kpi_date"].tolist() == kpis_exp["kpi_date"].tolist()
    for col in ("active_customers", "sessions", "orders", "completed_orders"):
        assert kpis[col].tolist() == kpis_exp[col].astype(int).tolist(), col
    assert [decimal.Decimal(str(v)) for v in kpis["revenue"]] == [decimal.Decimal(v) for v in kpis_exp["revenue"]]
    # sessions: every session's boundaries, counts, device and funnel
    assert_sessions(scenario["sessions1"], rows)
    # funnel: per day, sessions and conversions add up to the sessions
    funnel = scenario["funnel1"].groupby("session_date")[["sessions", "converted_sessions"]].sum()
    s = m.expected_sessions(rows)
    by_day = s.groupby("session_date").agg(sessions=("events", "size"), converted=("converted", "sum"))
    assert funnel["sessions"].tolist() == by_day["sessions"].tolist()
    assert funnel["converted_sessions"].tolist() == by_day["converted"].astype(int).tolist()


def test_second_build_changes_nothing(scenario):
    assert scenario["sums2"] == scenario["sums1"]
    assert all(v == 0 for v in scenario["dups2"].values()), scenario["dups2"]


def test_incremental_build_recomputes_affected_customers_over_full_history(scenario):
    rows: m.MirrorRows = scenario["rows3"]
    who = scenario["who"]
    snapshot = scenario["snapshot1"]
    before = scenario["features1"].set_index("customer_id")
    after = scenario["features3"].set_index("customer_id")
    amount = float(NEW_ORDER_AMOUNT)
    # X: old + new order together (not the new slice alone)
    x0, x1 = before.loc[who["X"]], after.loc[who["X"]]
    assert x0["frequency"] >= 1
    assert x1["frequency"] == x0["frequency"] + 1
    assert x1["monetary"] == pytest.approx(x0["monetary"] + amount)
    assert x1["orders_7d"] == x0["orders_7d"] + 1 and x1["sessions_7d"] == x0["sessions_7d"] + 1
    assert x1["recency_days"] == min(3, x0["recency_days"])
    orders = scenario["orders3"].set_index("customer_id")
    live_orders = rows.live_orders()
    x_orders = live_orders[live_orders["customer_id"] == who["X"]]
    assert orders.loc[who["X"], "orders"] == len(x_orders)
    assert float(orders.loc[who["X"], "lifetime_revenue"]) == pytest.approx(
        x_orders.loc[x_orders["order_status"] == "completed", "amount"].sum())
    # Y: the refunded order leaves revenue and frequency, and counts as a refund
    y0, y1 = before.loc[who["Y"]], after.loc[who["Y"]]
    assert y1["frequency"] == y0["frequency"] - 1 and y1["refunds"] == y0["refunds"] + 1
    assert y1["monetary"] == pytest.approx(y0["monetary"] - scenario["y_order"]["amount"])
    # Z deleted: gone from the features and the dimension; W's new tier is there
    assert who["Z"] not in after.index and who["Z"] not in set(scenario["dim3"]["customer_id"])
    assert after.loc[who["W"], "subscription_tier"] == scenario["w_tier"]
    # U was not touched by the new rows, so its rows were not rewritten (the marker survived)
    assert scenario["u_after_orders"] == scenario["u_before"]
    assert after.loc[who["U"], "cancellations"] == before.loc[who["U"], "cancellations"] + 1000
    # ... and apart from the marker, every customer matches pandas on all rows
    expected = m.expected_features(rows, snapshot).sort_values("customer_id").reset_index(drop=True)
    got = scenario["features3"].copy()
    got.loc[got["customer_id"] == who["U"], "cancellations"] -= 1000
    assert_frames_equal(got, expected)
    # the day of the new order: revenue and orders of all of that day, old and new
    kpis_exp = m.expected_daily_kpis(rows).set_index("kpi_date")
    kpis = scenario["kpis3"].set_index("kpi_date")
    new_day = snapshot - dt.timedelta(days=3)
    assert kpis.loc[new_day, "orders"] == kpis_exp.loc[new_day, "orders"]
    assert decimal.Decimal(str(kpis.loc[new_day, "revenue"])) == kpis_exp.loc[new_day, "revenue"]
    assert [decimal.Decimal(str(v)) for v in kpis["revenue"]] == list(kpis_exp["revenue"])
    assert kpis["sessions"].tolist() == kpis_exp["sessions"].astype(int).tolist()
    # the late event moved its session's start and is counted in it
    assert_sessions(scenario["sessions3"], rows)
    late = scenario["sessions3"].set_index("session_id").loc[scenario["late_session"]]
    before_s = scenario["sessions1"].set_index("session_id").loc[scenario["late_session"]]
    assert late["events"] == before_s["events"] + 1
    assert (before_s["session_start"] - late["session_start"]).total_seconds() == 90
    # the deleted event and the deleted order are gone from their session and customer
    s1 = scenario["sessions1"].set_index("session_id")
    s3 = scenario["sessions3"].set_index("session_id")
    sid = scenario["deleted_event_session"]
    assert s3.loc[sid, "events"] == s1.loc[sid, "events"] - 1
    v0, v1 = before.loc[who["V"]], after.loc[who["V"]]
    assert v1["frequency"] == v0["frequency"] - 1
    assert v1["monetary"] == pytest.approx(v0["monetary"] - scenario["v_order"]["amount"])
    # Z's sessions now count under acquisition channel 'unknown'
    z_sessions = m.expected_sessions(rows).query("customer_id == @who['Z']")
    assert len(z_sessions) > 0
    unknown = scenario["funnel3"].query("acquisition_channel == 'unknown'")["sessions"].sum()
    assert unknown >= len(z_sessions)
    assert scenario["funnel3"]["sessions"].sum() == len(m.expected_sessions(rows))
    assert all(v == 0 for v in scenario["dups3"].values()), scenario["dups3"]


def test_incremental_result_equals_a_full_rebuild(scenario):
    assert scenario["sums3"] == scenario["sums_full"]


def test_no_raw_email_test_catches_a_leak(scenario):
    leak = scenario["leak"]
    assert leak.returncode != 0
    assert "FAIL 1 assert_no_raw_email_in_any_model" in leak.stdout or "FAIL=1" in leak.stdout, leak.stdout[-2000:]


def test_stg_web_events_and_int_sessions_merges_resume_when_the_run_ends(scenario):
    """Built without background merges (they would take the build's cores); on-run-end resets that, so
    after the run the tables merge as any other. The DDL of the build (dbt's log) had them off."""
    engines, ddls = scenario["engines1"], scenario["ddls1"]
    assert sorted(engines) == ["int_sessions", "stg_web_events"], engines
    for table, engine in engines.items():
        assert "max_bytes_to_merge_at_max_space_in_pool" not in engine, (table, engine)
        assert "max_bytes_to_merge_at_max_space_in_pool=1" in ddls[table].splitlines()[-1], (table, ddls[table])
    assert engines["stg_web_events"].startswith("MergeTree ORDER BY (session_id, event_time, event_id)")
    assert engines["int_sessions"].startswith("MergeTree ORDER BY (session_id)")


def test_mirror_reconciliation_catches_a_duplicate_event(scenario):
    dup = scenario["duplicate"]
    assert dup.returncode != 0
    assert "FAIL 1 assert_stg_web_events_match_mirror" in dup.stdout, dup.stdout[-2000:]


def test_contract_types_and_docs(scenario):
    from spark_ml.features import COLUMNS, conform
    client = scenario["client"]
    cols = client.query(f"SELECT name, type FROM system.columns WHERE database = '{scenario['schema']}' "
                        "AND table = 'customer_features' ORDER BY position").result_rows
    assert cols == [(c.name, c.clickhouse_type) for c in COLUMNS]
    # and the export's own check accepts the mart as it is
    table = client.query_arrow(f"SELECT * FROM {scenario['schema']}.customer_features")
    conformed = conform(table, "dbt customer_features")
    assert conformed.num_rows == len(scenario["features3"]) > 0
    nodes = scenario["catalog"]["nodes"]
    for t in TABLES + ["stg_customers", "stg_web_events", "stg_purchase_events"]:
        assert f"model.churn_platform.{t}" in nodes, t
    assert "email_sha256" in nodes["model.churn_platform.stg_customers"]["columns"]
    assert "email" not in nodes["model.churn_platform.stg_customers"]["columns"]
    fresh = scenario["freshness"]
    assert fresh.returncode == 0 and fresh.stdout.count("PASS freshness of") == 3, fresh.stdout[-2000:]


# -- helpers ---------------------------------------------------------------------------------------
def assert_sessions(got: pd.DataFrame, rows: m.MirrorRows) -> None:
    exp = m.expected_sessions(rows)
    got = got.set_index("session_id").sort_index()
    assert got.index.tolist() == exp.index.tolist()
    for col in ("customer_id", "events", "page_views", "device_type", "country"):
        assert got[col].tolist() == exp[col].tolist(), col
    assert [str(d)[:10] for d in got["session_date"]] == [str(d) for d in exp["session_date"]]
    assert got["converted"].astype(bool).tolist() == exp["converted"].tolist()
    assert (pd.to_datetime(got["session_start"], utc=True) == exp["session_start"]).all()
    assert (pd.to_datetime(got["session_end"], utc=True) == exp["session_end"]).all()
    web = rows.live_web()
    steps = web.groupby("session_id").apply(m.funnel_step, include_groups=False)
    assert got["funnel_step"].astype(int).tolist() == steps.sort_index().tolist()


def assert_frames_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    assert got["customer_id"].tolist() == expected["customer_id"].tolist()
    for col in expected.columns:
        a, g = expected[col], got[col]
        if col in ("snapshot_date", "signup_date"):
            assert [str(v)[:10] for v in g] == [str(v) for v in a], col
        elif col in ("country", "acquisition_channel", "subscription_tier", "customer_id"):
            assert g.tolist() == a.tolist(), col
        else:
            av = pd.to_numeric(a).astype(float).to_numpy()
            gv = pd.to_numeric(g).astype(float).to_numpy()
            bad = ~np.isclose(gv, av, rtol=1e-9, atol=1e-9, equal_nan=True)
            assert not bad.any(), (col, list(zip(got["customer_id"][bad][:5], gv[bad][:5], av[bad][:5])))

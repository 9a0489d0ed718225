"""Without services: what `wait-for-pipeline` expects from a run's ledger, which runs it picks by default,
the demo summary's table, and that event ids are salted with the customer id prefix."""
from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import orjson
import pytest

from simulators import pipeline, run, summary

pytestmark = pytest.mark.unit

START = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)


def simulate(tmp_path, **kw):
    args = dict(start=START, days=5, customers=60, seed=3, sink="memory", quiet=True, ledger="summary",
                write_ground_truth=False, ledger_dir=tmp_path / "events")
    args.update(kw)
    return run(**args)


def test_checks_count_the_ledgers_valid_records_in_the_runs_scope(tmp_path):
    ledger = simulate(tmp_path, id_prefix="t9_", duplicate_rate=0.05, malformed_rate=0.02)
    s = json.loads((tmp_path / "events" / "summary.json").read_text())
    checks = {c.table: c for c in pipeline.checks_for(s)}
    assert set(checks) == {"raw.web_events", "cdc.raw_web_events", "raw.purchase_events", "cdc.raw_purchase_events"}
    assert checks["raw.web_events"].expected == checks["cdc.raw_web_events"].expected == ledger.web.valid
    assert checks["raw.purchase_events"].expected == ledger.purchases.valid
    assert ledger.web.duplicates and ledger.web.malformed            # not counted: collapsed / dead-lettered
    scope = checks["raw.web_events"].params
    assert (scope["lo"], scope["hi"]) == (ledger.min_event_ms, ledger.max_event_ms)
    assert re.match(scope["p"], "t9_0000042") and not re.match(scope["p"], "t9_0000042x")
    assert not re.match(scope["p"], "xt9_0000042") and not re.match(scope["p"], "C0000042")


def test_customer_checks_expect_the_final_rows(tmp_path):
    s = {"kind": "customers", "config": {"id_prefix": "C"}, "final_rows": 386}
    assert [(c.stage, c.table, c.expected) for c in pipeline.checks_for(s)] == [
        ("crm", "crm.customers", 386), ("cdc", "cdc.crm_customers", 386)]


def _ledger(root, run_id, kind, **cfg):
    d = root / "simulator" / "ledger" / run_id
    d.mkdir(parents=True)
    base = {"seed": 1, "customers": 10, "id_prefix": "C", "start": "2026-01-01T00:00:00+00:00", "days": 60}
    (d / "summary.json").write_text(json.dumps({"run_id": run_id, "kind": kind, "config": {**base, **cfg}}))


def test_default_runs_are_the_newest_events_run_and_its_populations_customers_run(tmp_path):
    settings = SimpleNamespace(data_dir=tmp_path)
    with pytest.raises(pipeline.PipelineError, match="no simulator run"):
        pipeline.default_runs(settings)
    _ledger(tmp_path, "20260101T000000Z-customers-aaaaaa", "customers")
    _ledger(tmp_path, "20260102T000000Z-customers-bbbbbb", "customers", seed=2)
    _ledger(tmp_path, "20260103T000000Z-events-cccccc", "events")
    assert pipeline.default_runs(settings) == ["20260103T000000Z-events-cccccc", "20260101T000000Z-customers-aaaaaa"]
    _ledger(tmp_path, "20260104T000000Z-events-dddddd", "events", seed=3)   # no customers run of its population
    assert pipeline.default_runs(settings) == ["20260104T000000Z-events-dddddd"]
    with pytest.raises(pipeline.PipelineError, match="no ledger for run nope"):
        pipeline.read_summary(settings, "nope")


def test_event_ids_depend_on_the_id_prefix_and_the_population_does_not(tmp_path):
    a = simulate(tmp_path, id_prefix="a_", ledger="none")
    b = simulate(tmp_path, id_prefix="b_", ledger="none")
    ids = [{orjson.loads(v).get("event_id") or orjson.loads(v)["order_id"] for _, _, v in x.sink.messages} for x in (a, b)]
    assert len(ids[0]) == a.valid and not ids[0] & ids[1]
    assert a.valid == b.valid and a.web_counts() == b.web_counts()     # same behaviour, other ids


def test_summary_table_shows_sizes_churn_and_ratio(tmp_path):
    ev = {
        "run_id": "r1", "messages": 1100, "config": {"customers": 400, "id_prefix": "C", "seed": 5101, "days": 60,
                                                     "start": "2026-09-23T00:00:00+00:00"},
        "topics": {"web_events": {"valid": 1000, "duplicates": 0, "malformed": 0},
                   "purchase_events": {"valid": 100, "duplicates": 0, "malformed": 0}},
        "purchase_events": {"orders": 100, "revenue": "1234.50"}}
    text = summary.render({"events": ev, "segmentation": {
        "run_id": "s1", "snapshot_date": dt.date(2026, 11, 23), "customers": 386, "k": 2, "silhouette": 0.45,
        "overall_churn_rate": 0.236}, "segments": [
        {"segment_id": 1, "segment_name": "champions", "size": 200, "share": 0.518, "churn_rate": 0.036, "ratio": 0.15},
        {"segment_id": 2, "segment_name": "hibernating", "size": 186, "share": 0.482, "churn_rate": 0.579, "ratio": 2.45}]})
    assert "400 customers (prefix C, seed 5101), 60 days from 2026-09-23" in text
    assert "events sent 1,100: web_events 1,000 valid, purchase_events 100 valid" in text
    assert "k=2, silhouette 0.450, overall churn 23.6%" in text
    assert re.search(r"2  hibernating\s+186\s+48.2%\s+57.9%\s+2.45", text)
    assert "no segmentation run" in summary.render({"events": None, "segmentation": None, "segments": []})
    assert text.endswith("no churn scores in ClickHouse ml.churn_scores_latest yet (the pipeline's score_churn task)")
    churn = "\n".join(summary._churn_lines({
        "run_id": "c1", "customers": 386, "model": "churn_model", "version": "2", "mean_p_churn": 0.214,
        "revenue_at_risk": 12345.6, "bands": [{"band": "low", "customers": 200, "revenue_at_risk": 100.0},
                                              {"band": "very high", "customers": 20, "revenue_at_risk": 9000.4}],
        "top": [{"customer_id": "C0000007", "p_churn": 0.91, "revenue_at_risk": 812.3, "action": "retention call",
                 "reasons": "no visit in 21 days; downgraded in the last 30 days"}]}))
    assert "386 customers scored by churn_model v2 (@champion), mean p(churn) 21.4% over 30 days, " \
           "expected revenue at risk 12,346" in churn
    assert re.search(r"very high\s+20\s+9,000", churn)
    assert "C0000007  p 91%  812 at risk  → retention call  (no visit in 21 days; downgraded in the last 30 days)" in churn

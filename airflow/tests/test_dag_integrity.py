"""DAG integrity: every DAG file imports, and each DAG has the schedule, tags, retries and alerting it promises."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
EXPECTED = {"customer_analytics_pipeline", "customer_segmentation", "streaming_health", "churn_model_training"}
DBT_MODELS = {p.stem for p in (DAGS.parents[1] / "dbt" / "models").rglob("*.sql")}

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag
    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


def test_schedules(dagbag):
    pipeline = dagbag.dags["customer_analytics_pipeline"].timetable
    assert type(pipeline).__name__ == "CronTriggerTimetable" and pipeline.expression == "0 */6 * * *"
    training = dagbag.dags["churn_model_training"].timetable
    assert type(training).__name__ == "CronTriggerTimetable" and training.expression == "0 3 * * 1"
    health = dagbag.dags["streaming_health"].timetable
    assert type(health).__name__ == "DeltaTriggerTimetable" and health.delta == timedelta(minutes=5)
    segmentation = dagbag.dags["customer_segmentation"].timetable
    assert type(segmentation).__name__ == "AssetTriggeredTimetable"
    assert [a.uri for a in segmentation.asset_condition.objects] == \
        ["iceberg://lakehouse/marts/customer_features"]


def test_catchup_off_tags_and_one_run_at_a_time(dagbag):
    for dag_id in EXPECTED:
        dag = dagbag.dags[dag_id]
        assert dag.catchup is False, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id


def test_every_task_retries_with_backoff_and_records_alerts(dagbag):
    from churn_platform.common import record_alert

    for dag_id in EXPECTED:
        for t in dagbag.dags[dag_id].tasks:
            assert t.retries >= 1, t.task_id
            assert t.retry_exponential_backoff, t.task_id
            assert t.max_retry_delay is not None, t.task_id
            assert record_alert in (t.on_failure_callback if isinstance(t.on_failure_callback, list)
                                    else [t.on_failure_callback]), t.task_id


def test_no_trigger_rule_hides_a_failure(dagbag):
    for dag_id in EXPECTED:
        for t in dagbag.dags[dag_id].tasks:
            if t.task_id == "dbt_build.dbt_producer_watcher_done":
                # cosmos' marker after the producer: none_failed, so a producer skipped on a retry of the run
                # (its models then run one by one in their own tasks) does not stop the run; a failure still does
                assert t.trigger_rule == "none_failed"
                continue
            assert t.trigger_rule == "all_success", f"{dag_id}.{t.task_id}: {t.trigger_rule}"


def test_pipeline_order_and_dbt_tasks_per_model(dagbag):
    dag = dagbag.dags["customer_analytics_pipeline"]
    # watcher mode: ONE producer task runs `dbt build`; each model has a `run` and a `test` task following it
    producer = dag.get_task("dbt_build.dbt_producer_watcher")
    assert type(producer).__name__ == "DbtProducerWatcherOperator"
    runs = {t.task_id.split(".")[1] for t in dag.tasks if t.task_id.endswith(".run")}
    tests = {t.task_id.split(".")[1] for t in dag.tasks if t.task_id.endswith(".test")}
    assert runs == tests == DBT_MODELS
    for model in DBT_MODELS:
        assert dag.get_task(f"dbt_build.{model}.test").upstream_task_ids == {f"dbt_build.{model}.run"}
    # freshness and the run's cutoff side by side, both before the producer and the dbt roots; then a chain
    assert dag.get_task("fix_cutoff").upstream_task_ids == dag.get_task("check_cdc_freshness").upstream_task_ids == set()
    for first in ("fix_cutoff", "check_cdc_freshness"):
        assert {t.task_id for t in dag.get_task(first).downstream_list} == {
            "dbt_build.dbt_producer_watcher", "dbt_build.stg_customers.run", "dbt_build.stg_web_events.run",
            "dbt_build.stg_purchase_events.run"}
    dbt_leaves = {t.task_id for t in dag.tasks if t.task_id.startswith("dbt_build.")
                  and not any(d.task_id.startswith("dbt_build.") for d in t.downstream_list)}
    assert dag.get_task("export_features").upstream_task_ids == dbt_leaves
    assert "dbt_build.dbt_producer_watcher_done" in dbt_leaves
    assert "dbt_build.customer_features.test" in dag.get_task("export_features").get_flat_relative_ids(upstream=True)
    for upstream, downstream in [("export_features", "segment"), ("segment", "load_segments"),
                                 ("load_segments", "refresh_dashboards")]:
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.get_task("refresh_dashboards").downstream_list == []
    # the churn scores need the run's churn_features (a dbt model): after the whole dbt build, beside segmentation
    assert dag.get_task("score_churn").upstream_task_ids == dbt_leaves
    assert {t.task_id for t in dag.get_task("score_churn").downstream_list} == {"churn_drift_alerts"}
    assert [o.uri for o in dag.get_task("score_churn").outlets] == ["clickhouse://ml/churn_scores"]
    # the DAG sorts topologically (raises on a cycle)
    assert len(dag.topological_sort()) == len(dag.tasks)


def test_every_dbt_task_reads_the_runs_cutoff_and_polls_without_deferring(dagbag):
    """The producer and a model task retried alone (cosmos runs that model by itself) read the same frozen
    copy of the mirror; sensors poke instead of deferring (Airflow 3.3 can fail a deferred task whose
    trigger fires at once)."""
    dag = dagbag.dags["customer_analytics_pipeline"]
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt_build.") and hasattr(t, "vars")]
    assert len(dbt_tasks) == 1 + 2 * len(DBT_MODELS)
    for t in dbt_tasks:
        assert t.vars == {"cdc_database": "{{ ti.xcom_pull(task_ids='fix_cutoff') }}"}, t.task_id
        assert "vars" in t.template_fields, t.task_id
    for t in dbt_tasks:
        if t.task_id != "dbt_build.dbt_producer_watcher":
            assert t.deferrable is False and t.poke_interval <= 2, t.task_id


def test_assets_and_the_spark_pool(dagbag):
    pipeline = dagbag.dags["customer_analytics_pipeline"]
    segmentation = dagbag.dags["customer_segmentation"]
    assert [o.uri for o in pipeline.get_task("export_features").outlets] == \
        ["iceberg://lakehouse/marts/customer_features"]
    # lineage: each model's run task emits its table
    for model in DBT_MODELS:
        assert [o.uri for o in pipeline.get_task(f"dbt_build.{model}.run").outlets] == [f"clickhouse://analytics/{model}"]
    for dag in (pipeline, segmentation):
        assert [o.uri for o in dag.get_task("load_segments").outlets] == ["clickhouse://ml/customer_segments"]
    spark_tasks = {(d.dag_id, t.task_id) for d in (pipeline, segmentation) for t in d.tasks if t.pool == "spark"}
    assert spark_tasks == {("customer_analytics_pipeline", "export_features"),
                           ("customer_analytics_pipeline", "segment"), ("customer_segmentation", "segment")}


def test_streaming_health_checks(dagbag):
    dag = dagbag.dags["streaming_health"]
    assert {t.task_id for t in dag.tasks} == {"flink_job", "connectors", "consumer_lag", "dead_letters"}
    assert dag.get_task("consumer_lag").upstream_task_ids == {"flink_job", "connectors"}
    assert dag.dagrun_timeout == timedelta(minutes=15)


@pytest.mark.parametrize("dag_id", ["customer_analytics_pipeline", "churn_model_training"])
def test_a_new_platform_waits_for_the_next_cron_time(dag_id, dagbag, monkeypatch):
    """Made (the DAG first seen) 20 minutes after a cron time, the first scheduled run is the next cron time,
    not the one just past: that one would start on a still-empty mirror, and queue the demo's run behind it."""
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables import trigger
    from airflow.timetables.base import TimeRestriction

    timetable = decode_timetable(encode_timetable(dagbag.dags[dag_id].timetable))   # as the scheduler has it
    past = timetable._align_to_prev(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    monkeypatch.setattr(trigger, "utcnow", lambda: past + timedelta(minutes=20))
    first = timetable.next_dagrun_info(last_automated_data_interval=None,
                                       restriction=TimeRestriction(earliest=None, latest=None, catchup=False))
    assert first.run_after == timetable._align_to_next(past + timedelta(minutes=20)) > past, (past, first.run_after)

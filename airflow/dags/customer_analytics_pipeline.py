"""customer_analytics_pipeline: the batch side of the platform, every 6 hours.

check_cdc_freshness (dbt source freshness of the ClickHouse CDC mirror: a stale mirror stops the run)
and, alongside it, fix_cutoff (dbt/cutoff.py: the run's frozen copy of the mirror; every dbt process of
the run reads it, so events that keep arriving belong to the next run)
-> dbt_build (astronomer-cosmos, watcher mode: ONE `dbt build` of all models and tests in dbt's own
environment, and per model a `run` and a `test` task that follow its results and can be retried alone;
each `run` task emits the model's table as an asset, so lineage shows in the UI)
-> export_features (ClickHouse analytics.customer_features -> Iceberg; emits iceberg_customer_features)
-> segment (Spark ML K-Means, pool `spark`) -> load_segments (Iceberg -> ClickHouse ml.*; emits
clickhouse_customer_segments) -> refresh_dashboards (Superset chart caches);
and after dbt_build, beside the segmentation: score_churn (every live customer scored by the registry's
@champion churn model -> Iceberg ml.churn_scores and ClickHouse ml.churn_scores_latest; emits
clickhouse_churn_scores) -> churn_drift_alerts (an ops.alerts row per feature whose PSI against the
champion's training data is newly over 0.2). With no champion yet score_churn trains and gates one first, so
a new platform has scores after its first run; churn_model_training retrains weekly.

Every edge is all_success: a failure stops everything after it (and records an alert in ops.alerts).
Retries back off exponentially. catchup is off and one run at a time.
"""
from __future__ import annotations

from airflow.sdk import chain, dag, task
from churn_platform.common import (
    CHURN_SCORES,
    CUSTOMER_FEATURES,
    DBT_EXECUTABLE,
    DBT_PROJECT,
    DEFAULT_ARGS,
    MAIN_PYTHON,
    PIPELINE_DAG_ID,
    REPO,
    SPARK_POOL,
    cron,
    record_drift_alerts,
    segmentation_tasks,
    spark_ml,
    warehouse_table,
)
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior


@dag(
    dag_id=PIPELINE_DAG_ID,
    # no start_date, and cron(): on a fresh platform the first scheduled run is the next 6-hour mark, not
    # one at once while the stack is still filling with data (make demo triggers its own run)
    schedule=cron("0 */6 * * *"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["batch", "dbt", "spark", "iceberg", "clickhouse"],
    doc_md=__doc__,
)
def customer_analytics_pipeline():
    @task.bash(cwd=str(REPO))
    def check_cdc_freshness() -> str:
        # warn after 12 h, error after 24 h (dbt/models/staging/_sources.yml): an error fails the task
        return f"{MAIN_PYTHON} dbt/run.py source freshness"

    @task.bash(cwd=str(REPO))
    def fix_cutoff() -> str:
        # prints the frozen copy's database last: that line is the task's XCom, which dbt_build reads
        return f"{MAIN_PYTHON} dbt/cutoff.py fix '{{{{ run_id }}}}'"

    cutoff = fix_cutoff()

    dbt_build = DbtTaskGroup(
        group_id="dbt_build",
        project_config=ProjectConfig(DBT_PROJECT, install_dbt_deps=False),
        profile_config=ProfileConfig(profile_name="churn_platform", target_name="local",
                                     profiles_yml_filepath=DBT_PROJECT / "profiles.yml"),
        # watcher: a producer task runs one `dbt build` (dbt's threads build independent models at once)
        # and each model's task follows its result; a model's task retried alone runs that model alone
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER,
                                         dbt_executable_path=str(DBT_EXECUTABLE),
                                         invocation_mode=InvocationMode.SUBPROCESS),
        # every dbt process of the run reads the run's frozen copy of the mirror (fix_cutoff)
        operator_args={"vars": {"cdc_database": "{{ ti.xcom_pull(task_ids='fix_cutoff') }}"},
                       # poke in the worker rather than defer: Airflow 3.3 can fail a deferred task whose
                       # trigger fires at once (a stale success event of its defer-exit, apache/airflow#72716)
                       "deferrable": False, "poke_interval": 1},
        # `dbt ls` at parse time (cached by cosmos until the project changes); per model a `run` task and a
        # `test` task that follow the producer's results (watcher mode has no per-model `build` task). A test
        # of several models reports in the test task of each of them: the producer's `dbt build` runs it
        # after all of them, and its failure stops what depends on them, as any dbt build does.
        render_config=RenderConfig(load_method=LoadMode.DBT_LS, test_behavior=TestBehavior.AFTER_EACH,
                                   dbt_executable_path=str(DBT_EXECUTABLE),
                                   invocation_mode=InvocationMode.SUBPROCESS,
                                   should_detach_multiple_parents_tests=False),
        default_args=DEFAULT_ARGS,
    )

    # lineage: each model's `run` task emits the model's table as an asset. Cosmos' watcher mode derives
    # these from OpenLineage namespaces it has none of for ClickHouse, so they are declared here.
    for t in dbt_build.dag.tasks:
        if t.task_id.startswith(f"{dbt_build.group_id}.") and t.task_id.endswith(".run"):
            t.outlets = [warehouse_table("analytics", t.task_id.split(".")[1])]

    @task.bash(cwd=str(REPO), pool=SPARK_POOL, outlets=[CUSTOMER_FEATURES])
    def export_features() -> str:
        return spark_ml("export")

    @task.bash(cwd=str(REPO), outlets=[CHURN_SCORES])
    def score_churn() -> str:
        return spark_ml("churn-score --train-if-no-champion")

    # the freshness check and the cutoff are independent: side by side; dbt_build needs both to succeed
    chain([check_cdc_freshness(), cutoff], dbt_build, export_features(), segmentation_tasks())
    @task
    def churn_drift_alerts(score_output: str | None, dag_run=None) -> int:
        # a feature (or the score) newly over PSI 0.2: an ops.alerts row each (the dashboard shows the drift itself)
        return record_drift_alerts(score_output, dag_run.dag_id, dag_run.run_id)

    scored = score_churn()
    dbt_build >> scored
    churn_drift_alerts(scored)  # its XCom: the last line of the scoring output


customer_analytics_pipeline()

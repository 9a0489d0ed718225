"""customer_analytics_pipeline: the batch side of the platform, every 6 hours.

check_cdc_freshness (dbt source freshness of the ClickHouse CDC mirror: a stale mirror stops the run)
-> dbt_build (astronomer-cosmos: one `dbt build` task per model, models and their tests, in dbt's own
environment) -> export_features (ClickHouse analytics.customer_features -> Iceberg; emits the asset
iceberg_customer_features) -> segment (Spark ML K-Means, pool `spark`) -> load_segments (Iceberg ->
ClickHouse ml.*; emits clickhouse_customer_segments) -> refresh_dashboards (Superset chart caches).
Each dbt model task also emits the model's table as an asset (cosmos), so lineage shows in the UI.

Every edge is all_success: a failure stops everything after it (and records an alert in ops.alerts).
Retries back off exponentially. catchup is off and one run at a time.
"""
from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import chain, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

sys.path.insert(0, str(Path(__file__).resolve().parent))  # churn_platform, when imported outside Airflow
from churn_platform.common import (CUSTOMER_FEATURES, DBT_EXECUTABLE, DBT_PROJECT, DEFAULT_ARGS, MAIN_PYTHON,  # noqa: E402
                                   PIPELINE_DAG_ID, REPO, SPARK_POOL, segmentation_tasks, spark_ml)


@dag(
    dag_id=PIPELINE_DAG_ID,
    # no start_date: on a fresh platform the first scheduled run is the next 6-hour mark, not one at once
    # while the stack is still filling with data (make demo triggers its own run)
    schedule="0 */6 * * *",
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

    dbt_build = DbtTaskGroup(
        group_id="dbt_build",
        project_config=ProjectConfig(DBT_PROJECT, install_dbt_deps=False),
        profile_config=ProfileConfig(profile_name="churn_platform", target_name="local",
                                     profiles_yml_filepath=DBT_PROJECT / "profiles.yml"),
        execution_config=ExecutionConfig(dbt_executable_path=str(DBT_EXECUTABLE),
                                         invocation_mode=InvocationMode.SUBPROCESS),
        # `dbt ls` at parse time (cached by cosmos until the project changes); one build task per model;
        # a test of several models (e.g. the funnel reconciliation) gets its own task after all of them
        render_config=RenderConfig(load_method=LoadMode.DBT_LS, test_behavior=TestBehavior.BUILD,
                                   dbt_executable_path=str(DBT_EXECUTABLE),
                                   invocation_mode=InvocationMode.SUBPROCESS,
                                   should_detach_multiple_parents_tests=True),
        default_args=DEFAULT_ARGS,
    )

    @task.bash(cwd=str(REPO), pool=SPARK_POOL, outlets=[CUSTOMER_FEATURES])
    def export_features() -> str:
        return spark_ml("export")

    chain(check_cdc_freshness(), dbt_build, export_features(), segmentation_tasks())


customer_analytics_pipeline()

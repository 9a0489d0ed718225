"""customer_segmentation: K-Means segmentation of the newest Iceberg features, on new features or by hand.

Scheduled on the asset iceberg_customer_features, which customer_analytics_pipeline's export_features
task emits (and which anything else can emit through the REST API, e.g. after a manual
`spark_ml export`). The pipeline segments what it exports itself, in the same run, so that one run
shows the whole chain and its success means the dashboards are current. To never segment the same
export twice, this DAG's first task skips the run when every triggering asset event came from
customer_analytics_pipeline; it segments for events from any other producer and for manual runs.
All Spark tasks share the 1-slot pool `spark`, so two Spark jobs never run at once on this machine.

needs_segmentation -> segment -> load_segments -> refresh_dashboards
"""
from __future__ import annotations

from airflow.sdk import dag, task
from churn_platform.common import CUSTOMER_FEATURES, DEFAULT_ARGS, PIPELINE_DAG_ID, START_DATE, segmentation_tasks


@dag(
    dag_id="customer_segmentation",
    schedule=[CUSTOMER_FEATURES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["batch", "spark", "ml"],
    doc_md=__doc__,
)
def customer_segmentation():
    @task.short_circuit
    def needs_segmentation(**context) -> bool:
        events = context.get("triggering_asset_events") or {}
        sources = {getattr(event, "source_dag_id", None) for asset_events in events.values() for event in asset_events}
        if sources and sources <= {PIPELINE_DAG_ID}:
            print(f"features exported by {PIPELINE_DAG_ID}, which segments them itself: nothing to do")
            return False
        print(f"segmenting: {'manual run' if not sources else f'features from {sorted(map(str, sources))}'}")
        return True

    needs_segmentation() >> segmentation_tasks()


customer_segmentation()

"""The names the platform's parts agree on across virtualenvs: one definition each.

The simulators, the importer, the Flink job, the CDC sink, the Airflow DAGs, the benchmarks and the
tests read these names from here instead of retyping them. The Kafka topics are created from
stack/topics.conf (partitions, retention), which a unit test keeps in step with this module.
"""
from __future__ import annotations

# Kafka topics (docs/architecture.md, "Data contracts")
WEB_EVENTS_TOPIC = "web_events"            # one JSON web event per record, keyed by customer_id
PURCHASE_EVENTS_TOPIC = "purchase_events"  # one JSON order (with its line items) per record
DEAD_LETTER_TOPIC = "dead_letter"          # rejected records with their reason (Flink job, CDC sink)
EVENT_TOPICS = (WEB_EVENTS_TOPIC, PURCHASE_EVENTS_TOPIC)
# the field that carries each event topic's event time
EVENT_TIME_FIELDS = {WEB_EVENTS_TOPIC: "event_time", PURCHASE_EVENTS_TOPIC: "order_time"}

# the streaming job and the consumer groups whose lag says whether the stream keeps up
FLINK_JOB_NAME = "churn-streaming"
FLINK_CONSUMER_GROUP = f"flink-{FLINK_JOB_NAME}"
CDC_SINK_CONSUMER_GROUP = "cdc-sink"

# Airflow: the pipeline DAG, and the pool that runs one Spark job at a time
PIPELINE_DAG_ID = "customer_analytics_pipeline"
SPARK_POOL = "spark"

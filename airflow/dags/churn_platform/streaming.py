"""The streaming side's checks and repairs, for the streaming_health DAG.

Each check looks at one component through its real API (Flink REST, Kafka Connect REST, Kafka's
committed offsets and watermarks), repairs what it can, and returns the incidents it found as
dicts (component, problem, action, resolved); the DAG writes them to ops.incidents.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import requests

from churn_platform.common import MAIN_PYTHON, REPO
from platform_common.contracts import (
    CDC_SINK_CONSUMER_GROUP,
    DEAD_LETTER_TOPIC,
    FLINK_CONSUMER_GROUP,
    FLINK_JOB_NAME,
)
from platform_common.flink_rest import ACTIVE_STATES

# consumer groups whose lag matters: the Flink job (its offsets are committed on checkpoints) and the CDC sink
CONSUMER_GROUPS = (FLINK_CONSUMER_GROUP, CDC_SINK_CONSUMER_GROUP)


def _incident(component: str, problem: str, action: str, resolved: bool) -> dict:
    return {"component": component, "problem": problem, "action": action, "resolved": resolved}


def _flink_url() -> str:
    return os.environ["FLINK_REST_URL"].rstrip("/")


def flink_job_state() -> str | None:
    jobs = requests.get(f"{_flink_url()}/jobs/overview", timeout=10).json()["jobs"]
    states = [j["state"] for j in jobs if j["name"] == FLINK_JOB_NAME and j["state"] in ACTIVE_STATES]
    return states[0] if states else None


def check_flink_job() -> list[dict]:
    """The streaming job must be running; if not, resubmit it from its latest retained checkpoint."""
    try:
        state = flink_job_state()
    except (requests.RequestException, ValueError, KeyError) as exc:
        return [_incident("flink-jobmanager", f"REST API unreachable: {type(exc).__name__}", "none", False)]
    if state is not None:
        return []
    # the stack's own submission: resumes from the newest retained checkpoint (exactly once)
    result = subprocess.run([str(MAIN_PYTHON), "-m", "flink_jobs.deploy", "submit"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    output = " ".join((result.stdout + result.stderr).split())[-300:]
    resolved = result.returncode == 0 and flink_job_state() == "RUNNING"
    return [_incident("flink-job", f"job {FLINK_JOB_NAME} not running",
                      f"resubmitted from the latest checkpoint: {output}", resolved)]


def _connect_url() -> str:
    return os.environ["CONNECT_URL"].rstrip("/")


def connector_states() -> dict[str, tuple[str, list[str]]]:
    body = requests.get(f"{_connect_url()}/connectors", params={"expand": "status"}, timeout=10).json()
    return {name: (info["status"]["connector"]["state"], [t["state"] for t in info["status"].get("tasks", [])])
            for name, info in body.items()}


def _unhealthy(state: tuple[str, list[str]]) -> bool:
    connector, tasks = state
    return connector != "RUNNING" or not tasks or any(t != "RUNNING" for t in tasks)


def check_connectors(wait_seconds: float = 90) -> list[dict]:
    """Every Debezium connector and its tasks must be RUNNING: resume the paused, restart the failed."""
    try:
        states = connector_states()
    except (requests.RequestException, ValueError, KeyError) as exc:
        return [_incident("kafka-connect", f"REST API unreachable: {type(exc).__name__}", "none", False)]
    incidents = []
    for name, state in states.items():
        if not _unhealthy(state):
            continue
        connector, tasks = state
        if connector == "PAUSED":
            action = "resumed"
            requests.put(f"{_connect_url()}/connectors/{name}/resume", timeout=30).raise_for_status()
        else:
            action = "restarted (includeTasks, onlyFailed)"
            requests.post(f"{_connect_url()}/connectors/{name}/restart",
                          params={"includeTasks": "true", "onlyFailed": "true"}, timeout=60).raise_for_status()
        deadline = time.monotonic() + wait_seconds
        while _unhealthy(now := connector_states().get(name, ("MISSING", []))) and time.monotonic() < deadline:
            time.sleep(3)
        incidents.append(_incident(f"connector:{name}", f"connector {connector}, tasks {tasks}", action,
                                   not _unhealthy(now)))
    return incidents


def consumer_lag() -> dict[str, int | None]:
    """group -> messages behind the end of its topics (None: the group has committed nothing yet)."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"streaming-health-{uuid.uuid4()}",
                      "enable.auto.commit": False})
    try:
        lag: dict[str, int | None] = {}
        for group in CONSUMER_GROUPS:
            futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)
            committed = [tp for tp in futures[group].result().topic_partitions if tp.offset >= 0]
            if not committed:
                lag[group] = None
                continue
            lag[group] = sum(max(probe.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
                                 - tp.offset, 0) for tp in committed)
        return lag
    finally:
        probe.close()


def check_consumer_lag(threshold: int) -> tuple[dict[str, int | None], list[dict]]:
    lag = consumer_lag()
    incidents = [_incident(f"consumer-lag:{group}", f"{behind} messages behind (threshold {threshold})",
                           "none (alert only: the consumer is running but not keeping up)", False)
                 for group, behind in lag.items() if behind is not None and behind > threshold]
    return lag, incidents


def dead_letter_total() -> int:
    """Messages ever written to the dead-letter topic (sum of its partitions' end offsets)."""
    from confluent_kafka import Consumer, TopicPartition

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"streaming-health-{uuid.uuid4()}"})
    try:
        partitions = probe.list_topics(DEAD_LETTER_TOPIC, timeout=10).topics[DEAD_LETTER_TOPIC].partitions
        return sum(probe.get_watermark_offsets(TopicPartition(DEAD_LETTER_TOPIC, p), timeout=10)[1]
                   for p in partitions)
    finally:
        probe.close()


def check_dead_letters(previous: int | None) -> tuple[int, list[dict]]:
    """New dead letters since the previous check are an incident (bad input upstream; nothing to restart)."""
    total = dead_letter_total()
    if previous is None or total <= previous:
        return total, []
    return total, [_incident("dead-letter", f"{total - previous} new message(s) in {DEAD_LETTER_TOPIC} "
                             f"(total {total})", "none (inspect the topic: each record carries its reason)", False)]

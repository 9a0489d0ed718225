"""Kafka: one KRaft node (broker + controller), and the topics declared in stack/topics.conf."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic

from platform_common.config import REPO, Settings
from platform_common.errors import StackError
from platform_common.net import port_open
from stack import jvm
from stack.service import Service

TOPICS_FILE = REPO / "stack" / "topics.conf"


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: str

    @property
    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


def declared_topics(path: Path = TOPICS_FILE) -> list[Topic]:
    topics = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 4 or not fields[1].isdigit() or not fields[2].isdigit():
            raise StackError(f"{path.name}:{number}: expected 'name partitions retention.ms cleanup.policy'")
        topics.append(Topic(fields[0], int(fields[1]), int(fields[2]), fields[3]))
    return topics


def admin(settings: Settings) -> AdminClient:
    # log_level 0: connection-refused chatter while the broker starts is not news
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "socket.timeout.ms": 5000,
                        "log_level": 0})


def ensure_topics(settings: Settings, topics: list[Topic] | None = None) -> None:
    """Create missing topics, grow partitions and apply configs; idempotent."""
    client = admin(settings)
    topics = declared_topics() if topics is None else topics
    existing = client.list_topics(timeout=10).topics
    missing = [NewTopic(t.name, t.partitions, 1, config=t.config) for t in topics if t.name not in existing]
    grow = [NewPartitions(t.name, t.partitions) for t in topics
            if t.name in existing and len(existing[t.name].partitions) < t.partitions]
    futures = {}
    if missing:
        futures.update(client.create_topics(missing, request_timeout=30))
    if grow:
        futures.update(client.create_partitions(grow, request_timeout=30))
    present = [t for t in topics if t.name in existing]
    if present:
        futures.update(client.incremental_alter_configs([
            ConfigResource("topic", t.name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in t.config.items()])
            for t in present]))
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            raise StackError(f"Kafka topic {name}: {exc.args[0].str()}") from None


def service(settings: Settings) -> Service:
    root = settings.data_dir / "kafka"
    logs = root / "logs"
    properties = root / "server.properties"

    def prepare() -> None:
        jvm.render("kafka-server.properties", properties, host=settings.kafka_host, port=settings.kafka_port,
                   controller_port=settings.kafka_controller_port, log_dir=logs)
        if (logs / "meta.properties").exists():
            return
        result = subprocess.run(
            jvm.command("kafka.tools.StorageTool", "kafka", "256m", "format", "--ignore-formatted",
                        # `=`: a generated id may start with '-', which argparse would take for an option
                        f"--cluster-id={settings.kafka_cluster_id}", f"--config={properties}"),
            capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage in {logs} failed: {(result.stderr.strip() or result.stdout.strip()).splitlines()[-1]}")

    def healthy() -> bool:
        if not port_open(settings.kafka_port, settings.kafka_host):
            return False
        try:
            admin(settings).list_topics(timeout=2)
            return True
        except KafkaException:
            return False

    return Service(
        name="kafka",
        port=settings.kafka_port,
        port_setting="KAFKA_BOOTSTRAP_SERVERS",
        url=settings.kafka_bootstrap_servers,
        command=jvm.command("kafka.Kafka", "kafka", "768m", str(properties)),
        healthy=healthy,
        prepare=prepare,
        provision=lambda: ensure_topics(settings),
        extra_ports=(settings.kafka_controller_port,),
        stop_wait_seconds=60,
    )

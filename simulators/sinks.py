"""Where generated records go: Kafka (the real thing), memory (tests), nowhere (benchmarks)."""
from __future__ import annotations

from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from platform_common.errors import StackError

# Idempotent, fully acknowledged, lz4, large batches. Delivery reports only for failures, so a
# successful send costs no Python callback; flush() then tells whether everything was delivered.
PRODUCER_CONFIG = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "partitioner": "murmur2_random",   # same partition for a key as Java clients (Flink, Connect)
    "delivery.report.only.error": True,
    "log_level": 3,
}


class Sink(Protocol):
    def produce(self, topic: str, key: bytes, value: bytes) -> None: ...
    def flush(self) -> None: ...


class SimulatorError(StackError):
    """A run could not deliver what it generated; the message says what and how to fix it."""


class KafkaSink:
    def __init__(self, bootstrap_servers: str, **overrides):
        self.errors: list[str] = []
        self.failed = 0
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, **PRODUCER_CONFIG, **overrides,
                                  "error_cb": self._on_error, "on_delivery": self._on_delivery})
        self._produce = self.producer.produce
        self._poll = self.producer.poll
        self._n = 0
        self.bootstrap_servers = bootstrap_servers

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.errors.append(err.str())

    def _on_delivery(self, err, _msg) -> None:  # called for failures only
        if err is not None:
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(err.str())

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            self._produce(topic, value, key)
        except BufferError:  # local queue full: let librdkafka drain, then retry
            while True:
                self._poll(0.05)
                try:
                    self._produce(topic, value, key)
                    break
                except BufferError:
                    continue
        self._n += 1
        if not self._n & 0x3FFF:
            self._poll(0)
            if self.errors:
                raise SimulatorError(f"Kafka at {self.bootstrap_servers}: {self.errors[0]}; "
                                     f"is the stack up? (make up s=kafka)")

    def flush(self, timeout: float = 120.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise SimulatorError(f"Kafka at {self.bootstrap_servers}: {remaining} messages not delivered "
                                 f"within {timeout:.0f}s; is the stack up? (make up s=kafka)")
        if self.failed or self.errors:
            raise SimulatorError(f"Kafka at {self.bootstrap_servers}: {self.failed} messages failed: "
                                 f"{'; '.join(self.errors[:3])}")


class MemorySink:
    """Keeps every message as (topic, key, value) in send order."""

    def __init__(self):
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.produce = self._produce

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.messages.append((topic, key, value))

    def flush(self) -> None:
        pass


class NullSink:
    """Discards messages (generation-only benchmarks); counts them and their bytes."""

    def __init__(self):
        self.count = 0
        self.bytes = 0

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.count += 1
        self.bytes += len(value)

    def flush(self) -> None:
        pass


def check_topics(bootstrap_servers: str, topics: list[str]) -> None:
    """Fail with one line when Kafka is unreachable or a topic is missing (no auto-creation)."""
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0}).list_topics(timeout=10)
    except KafkaException as exc:
        raise SimulatorError(f"Kafka at {bootstrap_servers} is not reachable ({exc.args[0].str()}); "
                             f"start it with `make up s=kafka`") from None
    missing = [t for t in topics if t not in meta.topics]
    if missing:
        raise SimulatorError(f"Kafka topic(s) {', '.join(missing)} do not exist at {bootstrap_servers}; "
                             f"`make up` creates the declared ones (stack/topics.conf)")


def open_sink(sink, settings, topics: list[str]):
    """The sink a run sends to: None = Kafka at KAFKA_BOOTSTRAP_SERVERS (checked: reachable, topics
    exist), "memory", "null", or any object with produce(topic, key, value) and flush()."""
    if sink is None:
        check_topics(settings.kafka_bootstrap_servers, topics)
        return KafkaSink(settings.kafka_bootstrap_servers)
    if sink == "memory":
        return MemorySink()
    if sink == "null":
        return NullSink()
    return sink

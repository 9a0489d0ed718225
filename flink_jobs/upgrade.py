"""Upgrading the streaming job across a change of its state layout, without losing or doubling a row.

A checkpoint can only be restored into the plan that wrote it. flink_jobs/pipeline.py numbers its
plan's state layout (LAYOUT); the checkpoint folder records the layout of the checkpoints in it
(LAYOUT.json, absent before layout 2). When `make up` finds a retained checkpoint of another layout,
ensure_job (deploy.py) moves the folder aside with a one-line message and submits the new job
with a replay (pipeline.Replay) planned here from Kafka alone:

* done: the offsets the old job committed at its last checkpoint (what it has processed);
* aggregate_from: a minute early enough that every window the old job still had open starts at or
  after it. The old job's watermark was at least the smallest, over partitions, of the latest event
  time among the records just before `done`, minus the out-of-orderness; a window that was still
  open ends after that minus the allowed lateness, and a 5-minute active-sessions window starts up
  to 5 minutes before its last minute. One more minute covers rounding.
* start: per partition, the first offset whose Kafka timestamp is at or after aggregate_from minus a
  minute of clock skew. A record is produced after its event happens, so every event of those
  windows is replayed.

The new job upserts the replayed raw rows again (the same values), rebuilds those windows whole,
and sends no dead letter or late-event row for records below `done` (the old job did). The replay is
kept in LAYOUT.json, so a restart restores the new checkpoints into the same plan.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from flink_jobs import pipeline
from platform_common.config import Settings
from platform_common.contracts import FLINK_CONSUMER_GROUP

LAYOUT_FILE = "LAYOUT.json"
TAIL_RECORDS = 200          # records read before `done`, per partition, for its latest event time
IDLE_BEHIND = dt.timedelta(hours=1)   # a partition this far behind the newest was idle: not the watermark
CLOCK_SKEW = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Layout:
    version: int
    replay: pipeline.Replay | None = None

    @classmethod
    def read(cls, checkpoints: Path) -> Layout | None:
        """The layout of the checkpoints in the folder; None when it holds none and no record."""
        path = checkpoints / LAYOUT_FILE
        if path.exists():
            data = json.loads(path.read_text())
            replay = pipeline.Replay.from_json(json.dumps(data["replay"])) if data.get("replay") else None
            return cls(data["layout"], replay)
        return cls(1) if any(checkpoints.glob("*/chk-*/_metadata")) else None

    def write(self, checkpoints: Path) -> None:
        checkpoints.mkdir(parents=True, exist_ok=True)
        replay = json.loads(self.replay.to_json()) if self.replay else None
        (checkpoints / LAYOUT_FILE).write_text(json.dumps({"layout": self.version, "replay": replay}, indent=2) + "\n")


def move_aside(checkpoints: Path, old_version: int) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = checkpoints.with_name(f"{checkpoints.name}-layout{old_version}-{stamp}")
    shutil.move(checkpoints, aside)
    return aside


def event_time(payload: bytes, field: str) -> dt.datetime | None:
    """The record's event time as the job reads it (epoch millis, or ISO-8601 with Z); None if invalid."""
    try:
        value = orjson.loads(payload).get(field)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    if isinstance(value, str) and value.endswith("Z"):
        try:
            return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.UTC)
        except ValueError:
            return None
    return None


TIME_FIELDS = {pipeline.TOPICS["web"]: "event_time", pipeline.TOPICS["orders"]: "order_time"}


def plan_replay(settings: Settings) -> pipeline.Replay:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": FLINK_CONSUMER_GROUP, "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    try:
        done: dict[str, dict[int, int]] = {}
        latest: dict[tuple[str, int], dt.datetime] = {}
        for topic, field in TIME_FIELDS.items():
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
            done[topic] = {tp.partition: max(tp.offset, 0) for tp in committed}
            for p, offset in done[topic].items():
                low, _high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if offset <= low:
                    continue
                consumer.assign([TopicPartition(topic, p, max(low, offset - TAIL_RECORDS))])
                times = []
                while True:
                    msg = consumer.poll(5)
                    if msg is None or msg.error() or msg.offset() >= offset:
                        break
                    if (t := event_time(msg.value(), field)) is not None:
                        times.append(t)
                    if msg.offset() == offset - 1:
                        break
                if times:
                    latest[(topic, p)] = max(times)
        if not latest:   # the old job processed nothing: start where it stopped
            return pipeline.Replay(start=done, done=done)
        newest = max(latest.values())
        low_mark = min(t for t in latest.values() if t >= newest - IDLE_BEHIND)
        lag = dt.timedelta(seconds=pipeline.OUT_OF_ORDERNESS_SECONDS + pipeline.ALLOWED_LATENESS_SECONDS,
                           minutes=pipeline.SLIDE_SIZE_MINUTES + 1)
        aggregate_from = (low_mark - lag).replace(second=0, microsecond=0)
        since_ms = int((aggregate_from - CLOCK_SKEW).timestamp() * 1000)
        start: dict[str, dict[int, int]] = {}
        for topic, offsets in done.items():
            found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in offsets], timeout=10)
            # no record at or after that time (-1): nothing to replay there
            start[topic] = {tp.partition: offsets[tp.partition] if tp.offset < 0 else min(tp.offset, offsets[tp.partition])
                            for tp in found}
        return pipeline.Replay(start=start, done=done,
                               aggregate_from=aggregate_from.strftime("%Y-%m-%d %H:%M:%S"))
    finally:
        consumer.close()

"""The pieces of a layout upgrade that need no service: the layout record, event times as the job
reads them, and the replay's SQL (its effect on records: flink_jobs/tests; on the stack:
tests/e2e/test_streaming_upgrade.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from flink_jobs import pipeline, upgrade

pytestmark = pytest.mark.unit

UTC = dt.UTC


def test_a_folder_of_old_checkpoints_without_a_record_is_layout_1(tmp_path):
    assert upgrade.Layout.read(tmp_path) is None
    (tmp_path / "0123abcd" / "chk-7").mkdir(parents=True)
    (tmp_path / "0123abcd" / "chk-7" / "_metadata").write_bytes(b"x")
    assert upgrade.Layout.read(tmp_path) == upgrade.Layout(1)


def test_the_layout_record_keeps_its_replay(tmp_path):
    replay = pipeline.Replay(start={"web_events": {0: 5, 1: 7}}, done={"web_events": {0: 9, 1: 7}},
                             aggregate_from="2026-12-01 02:50:00")
    upgrade.Layout(2, replay).write(tmp_path)
    assert upgrade.Layout.read(tmp_path) == upgrade.Layout(2, replay)
    upgrade.Layout(2).write(tmp_path)
    assert upgrade.Layout.read(tmp_path) == upgrade.Layout(2, None)


def test_moving_aside_names_the_old_layout(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "job" / "chk-1").mkdir(parents=True)
    aside = upgrade.move_aside(checkpoints, 1)
    assert not checkpoints.exists() and (aside / "job" / "chk-1").is_dir()
    assert aside.name.startswith("checkpoints-layout1-")


@pytest.mark.parametrize("payload, expected", [
    (b'{"event_time": 1764547200000}', dt.datetime(2025, 12, 1, tzinfo=UTC)),
    (b'{"event_time": "1764547200000"}', dt.datetime(2025, 12, 1, tzinfo=UTC)),
    (b'{"event_time": "2025-12-01T00:00:00.250Z"}', dt.datetime(2025, 12, 1, 0, 0, 0, 250000, tzinfo=UTC)),
    (b'{"event_time": "2025-12-01T00:00:00+00:00"}', None),     # the job refuses offsets too
    (b'{"event_time": true}', None),
    (b'{"order_time": 1764547200000}', None),
    (b'not json', None),
    (b'[1, 2]', None),
])
def test_event_times_are_read_as_the_job_reads_them(payload, expected):
    assert upgrade.event_time(payload, "event_time") == expected


def test_the_replay_sql_names_each_partition_and_offset():
    replay = pipeline.Replay(start={"web_events": {1: 40, 0: 10}}, done={"web_events": {0: 12, 1: 0}})
    assert replay.replayed_expr("web_events") == "((src_partition = 0 AND src_offset < 12))"
    assert replay.replayed_expr("purchase_events") == "FALSE"
    assert replay.startup_options("web_events") == (
        "'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = 'partition:0,offset:10;partition:1,offset:40'")
    assert replay.startup_options("purchase_events") == "'scan.startup.mode' = 'group-offsets'"
    assert pipeline.Replay.from_json(replay.to_json()) == replay

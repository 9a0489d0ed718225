"""Upgrading an install whose streaming job has the previous state layout loses and duplicates nothing.

An install of the previous version is rebuilt on the running stack: its job (previous_layout/, a
frozen copy of flink_jobs/ at commit e38388f: JSON parsed in SQL, updating aggregates) processes a live run
and is stopped with its checkpoint retained, in a checkpoint folder without LAYOUT.json, as that
version left it. Then ensure_job, what `make up` calls, must move that checkpoint aside and start the
current job with a replay (flink_jobs/upgrade.py). A second live run follows. Both runs reconcile
against their ledgers exactly, through assert_pipeline_matches: raw rows, every 1-minute aggregate
(the old job's windows that the replay recomputed among them), dead letters once each, the mirror.
"""
from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest

from flink_jobs import deploy, pipeline, upgrade
from platform_common import flink_rest
from stack import airflow, flink
from tests.e2e.test_streaming_pipeline import LIVE, Run, assert_pipeline_matches, wait_flink_consumed

pytestmark = pytest.mark.e2e

PREVIOUS_JOB = Path(__file__).parent / "previous_layout" / "flink_jobs" / "streaming_job.py"


@pytest.fixture(scope="module")
def job(stack_up):
    deploy.ensure_job(stack_up)
    assert flink_rest.running_job(stack_up)
    # the scheduled health check resubmits a job it finds stopped: not while this test stops it on purpose
    with airflow.Client(stack_up).paused("streaming_health"):
        yield stack_up


def test_upgrading_from_the_previous_layout_loses_and_duplicates_nothing(job, tmp_path, capsys):
    settings = job
    checkpoints = flink.Paths(settings).checkpoints
    deploy.cancel(settings, flink_rest.running_job(settings)["jid"])
    # the previous version's install: no layout record, only its own checkpoints
    shutil.rmtree(checkpoints)
    old_jid = deploy.submit(settings, None, job_script=PREVIOUS_JOB)
    r = Run(settings, tmp_path)
    first = r.events(duration=20, **LIVE)
    assert first.web.malformed and first.web.duplicates
    wait_flink_consumed(settings, r.sink)       # committed at a checkpoint past every message of the run
    deploy.cancel(settings, old_jid)
    assert upgrade.Layout.read(checkpoints) == upgrade.Layout(1)

    deploy.ensure_job(settings)                   # what `make up` does
    message = capsys.readouterr().out
    assert f"the job's state layout changed (1 -> {pipeline.LAYOUT})" in message, message
    layout = upgrade.Layout.read(checkpoints)
    assert layout.version == pipeline.LAYOUT and layout.replay is not None
    aside = [p for p in checkpoints.parent.glob("checkpoints-layout1-*") if any(p.glob(f"{old_jid}/chk-*"))]
    assert aside, "the previous layout's checkpoint was not kept aside"
    # the replay covers the run's windows: it starts no later than its first event's minute
    first_minute = dt.datetime.fromtimestamp(first.min_event_ms / 1000, dt.UTC).replace(second=0, microsecond=0)
    assert dt.datetime.fromisoformat(layout.replay.aggregate_from).replace(tzinfo=dt.UTC) <= first_minute

    # a second run in later minutes than the first's last event (each live ledger's windows are its own),
    # through the new job; the upgrade above often took that long already
    time.sleep(max(0.0, (first.max_event_ms // 60_000 + 1) * 60 + 1 - time.time()))
    r.events(duration=20, **LIVE)
    assert_pipeline_matches(r, r.ledgers)

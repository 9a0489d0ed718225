"""Deploying the streaming job to a Flink cluster: submit it, resume it, upgrade it.

`python -m flink_jobs.deploy ensure` (what `make up` runs once the TaskManager is healthy, and the
streaming_health DAG when the job is gone): unless a job of that name runs, submit it with the PyFlink
client (`flink run`), resumed from the latest retained checkpoint; when that checkpoint is of another
state layout, with a replay (upgrade.py). `submit` says whether it was already running; `checkpoint`
prints the latest retained checkpoint. The cluster itself (its folders, its REST address, the PyFlink
runtime) is the stack's (stack/flink.py); the same submission works against any JobManager
(FLINK_REST_URL), e.g. the compose stack's. Runs in the main virtualenv (.venv).
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import requests

from flink_jobs import pipeline, upgrade
from platform_common import config, flink_rest
from platform_common.config import REPO, Settings
from platform_common.contracts import FLINK_JOB_NAME
from platform_common.errors import StackError
from stack import flink

JOB_SCRIPT = REPO / "flink_jobs" / "streaming_job.py"


def cancel(settings: Settings, jid: str, timeout: float = 60) -> None:
    """Cancel a job (its checkpoint is retained) and wait until no job of ours is active."""
    requests.patch(f"{flink_rest.rest_url(settings)}/jobs/{jid}", params={"mode": "cancel"}, timeout=30).raise_for_status()
    deadline = time.monotonic() + timeout
    while flink_rest.running_job(settings):
        if time.monotonic() > deadline:
            raise StackError(f"the Flink job {jid} is still active {timeout:.0f}s after cancelling it")
        time.sleep(0.5)


def latest_checkpoint(settings: Settings) -> str | None:
    """The newest retained checkpoint: from the JobManager's job history, else from the folder."""
    known = sorted((j for j in flink_rest.jobs(settings) if j["name"] == FLINK_JOB_NAME), key=lambda j: j["start-time"], reverse=True)
    for job in known:
        try:
            latest = requests.get(f"{flink_rest.rest_url(settings)}/jobs/{job['jid']}/checkpoints", timeout=5).json()["latest"]
        except (requests.RequestException, ValueError, KeyError):
            continue
        completed = latest.get("completed") or {}
        if completed.get("external_path") and completed.get("checkpoint_type", "").endswith("CHECKPOINT"):
            path = completed["external_path"]
            local = Path(urlparse(path).path)
            # a checkpoint in our data folder must still be there; one of another JobManager (compose)
            # lives in its own file system
            if not local.is_relative_to(settings.data_dir.resolve()) or (local / "_metadata").exists():
                return path
    candidates = sorted(flink.Paths(settings).checkpoints.glob("*/chk-*/_metadata"), key=lambda p: p.stat().st_mtime)
    return str(candidates[-1].parent) if candidates else None


def submit(settings: Settings, from_checkpoint: str | None = None, timeout: float = 180,
           replay: pipeline.Replay | None = None, job_script: Path = JOB_SCRIPT) -> str:
    """Submit the streaming job (detached) and wait until it runs; returns the job id.

    replay: an upgrade's replay (upgrade.py), passed on every submission of that layout.
    job_script: another copy of the job (the upgrade test's previous layout) plans with its own
    `flink_jobs` package, from the folder above it (PYTHONPATH wins over the installed package)."""
    home = flink.pyflink_home()
    rest = urlparse(flink_rest.rest_url(settings))
    python = flink.VENV / "bin" / "python"
    cmd = ["bash", str(home / "bin" / "flink"), "run", "-d",
           f"-Drest.address={rest.hostname}", f"-Drest.port={rest.port or 8081}",
           f"-Dpython.client.executable={python}", "-Dpython.executable=python3"]
    if from_checkpoint:
        cmd += ["-s", from_checkpoint]
    cmd += ["--python", str(job_script)]
    env = {**os.environ, **flink.script_env(settings), "PYFLINK_CLIENT_EXECUTABLE": str(python),
           "FLINK_JOB_KAFKA_BOOTSTRAP_SERVERS": settings.flink_job_kafka_bootstrap_servers,
           "FLINK_JOB_POSTGRES_URL": settings.flink_job_postgres_url,
           "POSTGRES_STREAM_USER": settings.postgres_stream_user,
           "POSTGRES_STREAM_PASSWORD": settings.postgres_stream_password,
           "FLINK_JOB_REPLAY": replay.to_json() if replay else ""}
    if job_script != JOB_SCRIPT:
        env["PYTHONPATH"] = str(job_script.resolve().parent.parent)
    log = settings.data_dir / "logs" / "flink-submit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        result = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=600)
    if result.returncode != 0:
        hint = (f" (resuming from {from_checkpoint}; if the job's SQL changed incompatibly, move that checkpoint "
                f"folder away to start from the consumer group's committed offsets)" if from_checkpoint else "")
        raise StackError(f"submitting the Flink job failed{hint}; see {log}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = flink_rest.running_job(settings)
        if job and job["state"] == "RUNNING" and job.get("tasks", {}).get("running", 0) == job.get("tasks", {}).get("total", -1):
            return job["jid"]
        time.sleep(1)
    raise StackError(f"the Flink job {FLINK_JOB_NAME} did not reach RUNNING within {timeout:.0f}s; "
                     f"see {flink_rest.rest_url(settings)} and {settings.data_dir / 'logs' / 'flink-taskmanager.log'}")


@contextmanager
def submission_lock(settings: Settings):
    """One submitter at a time on this machine (make up, the streaming_health DAG, tests): without it two
    callers that both saw no job running each submitted one, and two jobs read the same topics."""
    path = flink.Paths(settings).root / "submit.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_job(settings: Settings) -> None:
    """Idempotent: submit the streaming job unless it is already running; from the latest checkpoint,
    or, when that checkpoint is of another state layout, with a replay (upgrade.py)."""
    with submission_lock(settings):
        if not flink_rest.running_job(settings):
            _submit_current(settings)


def _submit_current(settings: Settings) -> None:
    checkpoints = flink.Paths(settings).checkpoints
    checkpoint = latest_checkpoint(settings)
    layout = upgrade.Layout.read(checkpoints)
    if checkpoint and layout and layout.version != pipeline.LAYOUT:
        replay = upgrade.plan_replay(settings)
        aside = upgrade.move_aside(checkpoints, layout.version)
        print(f"flink: the job's state layout changed ({layout.version} -> {pipeline.LAYOUT}); its checkpoint moved "
              f"to {aside}, replaying from Kafka, windows from {replay.aggregate_from} UTC recomputed", flush=True)
        layout = upgrade.Layout(pipeline.LAYOUT, replay)
        layout.write(checkpoints)
        submit(settings, None, replay=replay)
        return
    if layout is None:
        layout = upgrade.Layout(pipeline.LAYOUT)
        layout.write(checkpoints)
    submit(settings, checkpoint, replay=layout.replay)


def main(argv: list[str]) -> int:
    """`python -m flink_jobs.deploy ensure|submit|checkpoint`."""
    settings = config.load()
    if argv[:1] == ["ensure"]:
        ensure_job(settings)
        return 0
    if argv[:1] == ["submit"]:
        job = flink_rest.running_job(settings)
        if job:
            print(f"already running: {job['jid']}")
        else:
            ensure_job(settings)
            print(f"submitted: {flink_rest.running_job(settings)['jid']}")
        return 0
    if argv[:1] == ["checkpoint"]:
        print(latest_checkpoint(settings) or "none")
        return 0
    print("usage: python -m flink_jobs.deploy ensure|submit|checkpoint", file=sys.stderr)
    return 2

if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (StackError, requests.RequestException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

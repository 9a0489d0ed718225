"""Shared fixtures. Integration tests get the running stack through `stack_up`, which starts it
with the same command users run (`python -m stack up`) and stops it afterwards if it started it."""
from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from flink_jobs import deploy
from platform_common import config
from platform_common.config import REPO
from simulators import pipeline
from simulators.cli import DEMO_CUSTOMERS, DEMO_DAYS, DEMO_SEED
from stack import lifecycle, services
from tests.support import population


def run_stack(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "stack", *args], cwd=REPO, capture_output=True, text=True,
                            env=env, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"stack {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def ensure_up(settings: config.Settings, *names: str) -> config.Settings:
    """The named services and what they depend on, healthy: `stack up <names>` starts them when they are
    not (`make test` stops the stack afterwards when it started it)."""
    needed = services.select(services.all_services(settings), list(names))
    if not all(row.healthy for row in lifecycle.rows(settings, needed)):
        run_stack("up", *names)
    return settings


@pytest.fixture(scope="session")
def settings() -> config.Settings:
    return config.load()


@pytest.fixture(scope="session")
def stack_up(settings):
    """The whole local stack, healthy. Started here only if it was not already running."""
    already = all(row.healthy for row in lifecycle.rows(settings, services.all_services(settings)))
    if not already:
        run_stack("up")
    yield settings
    if not already:
        run_stack("down")


@pytest.fixture(scope="session")
def simulated_population(stack_up, tmp_path_factory):
    """A small simulated population sent through the real streaming path (customers → PostgreSQL,
    events → Kafka → Flink → PostgreSQL, both → Debezium → ClickHouse) and waited for, so tests of the
    batch side never depend on data left by an earlier run: on a fresh stack the CDC mirror is empty and
    the pipeline's freshness check rightly fails. Its own id prefix keeps it apart from other runs.
    Returns (id prefix, customer ledger, event ledger)."""
    settings = stack_up
    deploy.ensure_job(settings)
    tmp = tmp_path_factory.mktemp("population")
    prefix = f"pop{uuid.uuid4().hex[:8]}_"
    # the demo's preset: 60 days of history let the pipeline's score_churn train its first churn model (it
    # needs more than churn_horizon_days + churn_min_history_days of data) on a population it passes the gate with
    customers, events = population.send(settings, tmp, prefix, customers=DEMO_CUSTOMERS, days=DEMO_DAYS, seed=DEMO_SEED)
    # every mirrored table gets rows (the freshness check reads each one's newest row)
    assert customers.final and events.web.valid > 0 and events.purchases.valid > 0
    pipeline.wait(settings, population.ledgers(tmp), timeout=480, progress=None)
    return prefix, customers, events

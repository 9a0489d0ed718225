"""stack.lifecycle.probe: the final health check of `make up` retries a probe that fails for a moment
(CI once failed `make test` because the Airflow api-server, busy with the scheduler's first run, missed
one health request right after it had passed its start-up check)."""
from __future__ import annotations

import time

import pytest

from stack.lifecycle import probe
from stack.service import Service

pytestmark = pytest.mark.unit


def _service(answers: list[bool]) -> Service:
    calls = iter(answers)
    return Service(name="svc", port=1, port_setting="SVC_PORT", url="-", command=["true"],
                   healthy=lambda: next(calls, False))


def test_a_probe_that_fails_once_passes_with_patience():
    assert probe(_service([False, True]), patience=5) is True


def test_without_patience_one_failed_probe_is_unhealthy():
    assert probe(_service([False, True])) is False


def test_a_service_that_stays_down_is_unhealthy_after_the_patience():
    started = time.monotonic()
    assert probe(_service([]), patience=2) is False
    assert 1.5 <= time.monotonic() - started < 4

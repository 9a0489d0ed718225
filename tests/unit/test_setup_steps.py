"""`make setup` runs its steps concurrently within lanes, after what they need, and stops starting new ones on a failure."""
from __future__ import annotations

import threading
import time

import pytest

from platform_common.errors import StackError
from stack import setup

pytestmark = pytest.mark.unit


def _recording(log: list, key: str, seconds: float = 0.05, fail: bool = False):
    def run() -> str:
        log.append(("start", key))
        time.sleep(seconds)
        log.append(("end", key))
        if fail:
            raise StackError(f"{key} failed")
        return "ok"
    return run


def test_lanes_and_needs_are_respected(monkeypatch):
    monkeypatch.setattr(setup, "LANES", {"first": 1, "go": 1, "uv": 2})
    log: list = []
    meet = threading.Barrier(3, timeout=10)   # go1, uv1 and uv2 only pass it if they run at the same time
    active, most, lock = {"go": 0}, {"go": 0}, threading.Lock()

    def go(key: str, barrier: bool):
        def run() -> str:
            with lock:
                active["go"] += 1
                most["go"] = max(most["go"], active["go"])
            if barrier:
                meet.wait()
            time.sleep(0.05)
            with lock:
                active["go"] -= 1
            return "ok"
        return run

    def uv() -> str:
        meet.wait()
        return "ok"

    steps = [setup.Step("pre", "pre", _recording(log, "pre"), "first"),
             setup.Step("go1", "go1", go("go1", True), "go", ("pre",)),
             setup.Step("go2", "go2", go("go2", False), "go", ("pre",)),
             setup.Step("uv1", "uv1", uv, "uv", ("pre",)),
             setup.Step("uv2", "uv2", uv, "uv", ("pre",))]
    assert setup.run_steps(steps) is None
    assert most["go"] == 1                                   # one Go build at a time
    assert all(s.state == "done" and s.outcome == "ok" and s.seconds > 0 for s in steps)
    assert steps[0].started + steps[0].seconds <= min(s.started for s in steps[1:])  # after what they need


def test_a_failure_lets_running_steps_finish_and_starts_nothing_new(monkeypatch):
    monkeypatch.setattr(setup, "LANES", {"go": 1, "uv": 1})
    log: list = []
    steps = [setup.Step("bad", "bad", _recording(log, "bad", 0.01, fail=True), "go"),
             setup.Step("slow", "slow", _recording(log, "slow", 0.2), "uv"),
             setup.Step("later", "later", _recording(log, "later"), "go")]
    error = setup.run_steps(steps)
    assert str(error) == "bad failed"
    assert [s.state for s in steps] == ["failed", "done", "not run"]
    assert ("start", "later") not in log


def test_summary_keeps_the_original_order_with_times():
    steps = [setup.Step("a", "step a", lambda: "built", "go"), setup.Step("b", "step b", lambda: "", "go")]
    steps[0].state, steps[0].outcome, steps[0].seconds = "done", "built", 12.34
    assert setup._summary_line(1, 2, steps[0]) == "[green]✓[/] [1/2] step a: built (12.3s)"
    assert "not run" in setup._summary_line(2, 2, steps[1])
    assert [s.key for s in setup.steps()][:2] == ["prerequisites", "env"]
    assert not any("compose" in s.label for s in setup.steps())      # built only where it is used
    assert all(set(s.needs) >= {"prerequisites", "env"} for s in setup.steps()[2:])


def test_compose_plugin_is_built_on_demand_and_stamped(monkeypatch):
    from stack import compose
    built = []
    monkeypatch.setattr(compose, "docker_compose_available", lambda: False)
    monkeypatch.setattr(compose, "_stamped", lambda name, inputs, output, build: built.append((name, output)))
    assert compose.compose_env() == {"DOCKER_CONFIG": str(compose.TOOLS / "docker")}
    assert built == [("compose", compose.COMPOSE_PLUGIN)]
    monkeypatch.setattr(compose, "docker_compose_available", lambda: True)
    assert compose.compose_env() == {}

"""Shared fixtures. Integration tests get the running stack through `stack_up`, which starts it
with the same command users run (`python -m stack up`) and stops it afterwards if it started it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from stack import config, lifecycle, services
from stack.config import REPO


def run_stack(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "stack", *args], cwd=REPO, capture_output=True, text=True,
                            env=env, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"stack {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


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

"""What the stack knows about one service: how to start it, check it and provision it."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from platform_common.config import REPO
from platform_common.errors import StackError


@dataclass
class Service:
    name: str
    port: int | None               # the main port: must be free before start, shown by `status`; None:
                                   # the OS picks one at each start (nothing connects to it from outside)
    port_setting: str | None       # the .env variable that sets it, named in errors
    url: str                       # what a user opens or connects to
    command: list[str]             # run in the foreground under supervisord
    healthy: Callable[[], bool]    # a quick real-client probe; never raises
    depends_on: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None    # before the first start (initdb, storage format)
    provision: Callable[[], None] | None = None  # once healthy, idempotent (roles, topics, buckets)
    details: Callable[[], str] | None = None     # extra status text (e.g. connector states)
    user: str | None = None        # run as this OS user (PostgreSQL refuses to run as root)
    environment: dict[str, str] = field(default_factory=dict)
    extra_ports: tuple[int, ...] = ()
    stop_signal: str = "TERM"
    stop_wait_seconds: int = 30


def engine_command(*args: str) -> None:
    """Run an engine's own provisioning command in the main venv (`python -m <args>`): the stack starts
    and checks services, what an engine does on them is its code. Its output goes to the console."""
    if subprocess.run([sys.executable, "-m", *args], cwd=REPO).returncode != 0:
        raise StackError(f"`python -m {' '.join(args)}` failed; its error is printed above")

"""ClickHouse HTTP sessions: one chDB connection per (user, session_id).

A chDB connection carries its own settings and temporary tables, so it is a session. As in
clickhouse-server, a session is used by one request at a time (a concurrent request gets
SESSION_IS_LOCKED), and it expires `session_timeout` seconds (default 60, max 3600) after its
last request ended. All bookkeeping runs on the event loop thread, so it needs no locks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import errors
from .errors import ClickHouseError

DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 3600


@dataclass
class Session:
    key: tuple[str, str]
    conn: object
    timeout: float
    readonly_applied: bool = False
    # the session's own current database (changed by its USE statements only): a request's
    # `database` URL parameter applies to that request, as in clickhouse-server
    database: str = "default"
    busy: bool = False
    expires: float = 0.0


def parse_timeout(raw: str | None) -> float:
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ClickHouseError(errors.INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{raw}'") from None
    if value < 0 or value > MAX_TIMEOUT:
        raise ClickHouseError(errors.INVALID_SESSION_TIMEOUT,
                              f"Session timeout '{raw}' is larger than max_session_timeout: {MAX_TIMEOUT}. "
                              "Maximum session timeout could be modified in configuration file.")
    return value


class Sessions:
    def __init__(self, connect):
        self._connect = connect
        self._items: dict[tuple[str, str], Session] = {}
        self._closing: list = []

    def __len__(self) -> int:
        return len(self._items)

    def acquire(self, user: str, session_id: str, timeout: float, check: bool) -> Session:
        key = (user, session_id)
        s = self._items.get(key)
        if s is not None and not s.busy and s.expires <= time.monotonic():
            self._drop(s)
            s = None
        if s is None:
            if check:
                raise ClickHouseError(errors.SESSION_NOT_FOUND, f"Session {session_id} not found")
            s = Session(key, self._connect(), timeout)
            self._items[key] = s
        elif s.busy:
            raise ClickHouseError(errors.SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client")
        s.busy = True
        s.timeout = timeout
        return s

    def release(self, s: Session, close: bool = False) -> None:
        s.busy = False
        s.expires = time.monotonic() + s.timeout
        if close:
            self._drop(s)

    def _drop(self, s: Session) -> None:
        if self._items.get(s.key) is s:
            del self._items[s.key]
        self._closing.append(s.conn)

    def expire(self) -> list:
        """Forget expired idle sessions; return connections the caller must close (off-loop)."""
        now = time.monotonic()
        for s in [s for s in self._items.values() if not s.busy and s.expires <= now]:
            self._drop(s)
        closing, self._closing = self._closing, []
        return closing

    def close_all(self) -> list:
        for s in list(self._items.values()):
            self._drop(s)
        return self.expire()

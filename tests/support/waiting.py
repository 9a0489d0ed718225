"""Polling for outcomes of asynchronous pipelines (Flink, CDC) in tests."""
from __future__ import annotations

import time


def wait_for(fetch, expected, timeout: float = 120, settle: float = 0.0, interval: float = 0.5):
    """Poll fetch() until it returns `expected` or `timeout` s pass; returns the last value read.

    With `settle` > 0, read once more that many seconds after the first match, so a value that
    overshoots later (a duplicate arriving) is caught rather than passing on a lucky moment.
    """
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        got = fetch()
        if got == expected:
            if settle:
                time.sleep(settle)
                return fetch()
            return got
        time.sleep(interval)
    return got

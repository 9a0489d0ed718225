"""Rejected rows: every row that is not imported, with its reason. Nothing is dropped silently:
the counts per reason are printed and the rows are written to a CSV report."""
from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

COLUMNS = ("section", "file", "row", "reason")


class Rejections:
    def __init__(self):
        self.rows: list[tuple[str, str, int, str]] = []

    def add(self, section: str, file: str, row: int, reason: str) -> None:
        self.rows.append((section, file, row, reason))

    def __len__(self) -> int:
        return len(self.rows)

    def by_reason(self) -> dict[str, int]:
        """Counts per (section, reason kind): the reason without the row's own value, so one line
        stands for every row with that problem ("orders: order_time: not an ISO 8601 time")."""
        return dict(Counter(f"{s}: {_kind(r)}" for s, _f, _n, r in self.rows).most_common())

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            w.writerows(self.rows)
        return path


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\b\d[\d.,]*\b")


def _kind(reason: str) -> str:
    # the values in a reason are the row's own (quoted, or numbers): leave them out of the grouping
    return _QUOTED.sub("…", reason)

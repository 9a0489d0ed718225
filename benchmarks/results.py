"""Where a benchmark's figures go: .data/bench/<name>.json (the table is for people, this for tools)."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from platform_common.config import Settings


def write(settings: Settings, name: str, figures: dict) -> Path:
    """Write the figures with when and where they were measured; returns the file."""
    path = settings.data_dir / "bench" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0], **figures}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path

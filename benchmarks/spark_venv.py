"""`make bench` runs every benchmark with the main venv; the ML benchmarks need the spark venv's libraries."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

SPARK_PY = Path(__file__).resolve().parent.parent / ".tools" / "venvs" / "spark" / "bin" / "python"


def hand_over(module: str, script: str) -> None:
    """Unless `module` is importable here, re-run `script` (same arguments) with the spark venv's python."""
    if importlib.util.find_spec(module) is not None:
        return
    if not SPARK_PY.exists():
        sys.exit(f"error: {SPARK_PY} not found; run `make setup`")
    os.execv(str(SPARK_PY), [str(SPARK_PY), script, *sys.argv[1:]])

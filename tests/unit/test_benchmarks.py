"""Every benchmark starts the way `make bench b=NAME` starts it (python -m benchmarks.NAME from the repository's
root, the ML ones handing over to the spark venv) and gets as far as its arguments: an import that only
works from another working directory or sys.path fails here, not in the middle of a measurement.
(benchmarks/batch_scale.py, dbt_build.py and superset.py once imported tests.support while `make bench`
ran them as scripts, where the repository's root is not on sys.path: ModuleNotFoundError.)"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "Makefile").read_text()
HELPERS = {Path(p).stem for p in re.search(r"^BENCH_HELPERS := (.+)$", MAKEFILE, re.M).group(1).split()}
BENCHMARKS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem not in HELPERS)


def test_the_makefile_runs_benchmarks_as_modules():
    assert "-m benchmarks.$$(basename $$f .py)" in MAKEFILE
    assert {"__init__", "results", "spark_venv"} == HELPERS
    assert len(BENCHMARKS) >= 14


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_starts_as_make_bench_starts_it(name):
    ran = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, f"{name}: exit {ran.returncode}\n{ran.stderr[-1500:]}"
    assert ran.stdout.startswith("usage:"), ran.stdout[:300]

"""Cold `make setup`: a copy of the repository set up from nothing, with empty tool caches.

The copy (the working tree's files, or a commit with --ref, e.g. --ref main to compare) goes to
.data/bench/cold_setup/repo with its own empty .tools/.venv; the Go module and build caches, the Maven
local repository, the uv and pip caches point at empty folders next to it (GOMODCACHE, GOCACHE,
MAVEN_OPTS=-Dmaven.repo.local, UV_CACHE_DIR, PIP_CACHE_DIR), so the machine's own caches are neither
used nor touched. Takes several minutes and all the network it gets; starts no service.
Figures: each step's time as `make setup` prints it, the Makefile's main venv, and the total.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from rich.table import Table

from benchmarks import results
from platform_common import config
from stack.ui import console

REPO = Path(__file__).resolve().parent.parent

STEP_LINE = re.compile(r"^[✓✗-] \[\d+/\d+\] (?P<label>.+): (?P<outcome>.+) \((?P<seconds>[\d.]+)s\)$")


def _rmtree(path: Path) -> None:
    """Go makes its module cache read-only: make it writable again before deleting."""
    def retry(func, target, _exc):
        os.chmod(os.path.dirname(target), stat.S_IRWXU)
        os.chmod(target, stat.S_IRWXU)
        func(target)
    if path.exists():
        shutil.rmtree(path, onexc=retry) if sys.version_info >= (3, 12) else shutil.rmtree(path, onerror=retry)


def _copy_source(ref: str | None, target: Path) -> str:
    """The files of `ref`, or of the working tree (tracked and new, not ignored); returns what was copied."""
    target.mkdir(parents=True)
    if ref:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target)
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True, text=True,
                              check=True).stdout.strip()
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return "working tree"


def _cache_env(caches: Path) -> dict[str, str]:
    for name in ("gomod", "gocache", "m2", "uv", "pip"):
        (caches / name).mkdir(parents=True, exist_ok=True)
    return {"GOMODCACHE": str(caches / "gomod"), "GOCACHE": str(caches / "gocache"),
            "MAVEN_OPTS": f"-Dmaven.repo.local={caches / 'm2'}", "UV_CACHE_DIR": str(caches / "uv"),
            "PIP_CACHE_DIR": str(caches / "pip")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="set up this commit instead of the working tree (e.g. main)")
    parser.add_argument("--keep", action="store_true", help="keep the copy and its caches afterwards")
    args = parser.parse_args()
    settings = config.load()
    root = settings.data_dir / "bench" / "cold_setup"
    _rmtree(root)
    source = _copy_source(args.ref, root / "repo")
    env = {**os.environ, **_cache_env(root / "caches")}
    env.pop("VIRTUAL_ENV", None)
    console.print(f"cold make setup of {source} in {root / 'repo'} (log: {root / 'setup.log'})")
    t0 = time.monotonic()
    with (root / "setup.log").open("w") as log:
        rc = subprocess.run(["make", "setup"], cwd=root / "repo", env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    total = time.monotonic() - t0
    output = (root / "setup.log").read_text()
    steps = [m.groupdict() for m in map(STEP_LINE.match, output.splitlines()) if m]
    stack_setup = re.search(r"setup done in ([\d.]+)s", output)
    table = Table(title=f"cold make setup ({source}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    for column in ("step", "outcome", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    main_venv = total - float(stack_setup.group(1)) if stack_setup else None
    if main_venv is not None:
        table.add_row("main .venv (Makefile: uv, requirements/stack.lock)", "installed", f"{main_venv:.1f}")
    for step in steps:
        table.add_row(step["label"], step["outcome"], step["seconds"])
    table.add_row("[bold]total (make setup)[/]", "ok" if rc == 0 else f"exit {rc}", f"[bold]{total:.1f}[/]")
    console.print(table)
    path = results.write(settings, "cold_setup", {
        "source": source, "returncode": rc, "total_s": round(total, 1),
        "main_venv_s": round(main_venv, 1) if main_venv is not None else None,
        "steps": [{**s, "seconds": float(s["seconds"])} for s in steps]})
    console.print(f"figures: {path}")
    if not args.keep:
        _rmtree(root)
    return rc


if __name__ == "__main__":
    sys.exit(main())

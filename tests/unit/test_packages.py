"""The repository's Python packages are declared once (pyproject.toml) and installed into every virtualenv,
so no file reaches another package by editing sys.path; the names the parts share live in
platform_common.contracts and agree with what the stack creates."""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from platform_common import contracts
from stack import kafka

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", *patterns], cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_file_edits_sys_path():
    edits = []
    for path in tracked("*.py", "*.ipynb"):
        for n, line in enumerate((REPO / path).read_text(encoding="utf-8").splitlines(), 1):
            if "sys.path.insert" in line or "sys.path.append" in line:
                edits.append(f"{path}:{n}: {line.strip()}")
    edits = [e for e in edits if not e.startswith("tests/unit/test_packages.py:")]
    assert not edits, edits


def test_every_package_of_the_repository_is_installed_by_the_editable_install():
    declared = set(PYPROJECT["tool"]["setuptools"]["packages"])
    dirs = PYPROJECT["tool"]["setuptools"].get("package-dir", {})
    top_level = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert top_level <= declared, f"add {sorted(top_level - declared)} to [tool.setuptools] packages"
    for name in declared:
        assert (REPO / dirs.get(name, name) / "__init__.py").is_file(), name


def test_the_runtime_dependencies_come_from_the_lock_files_only():
    # each virtualenv installs the project with --no-deps after its lock; declared dependencies would be ignored
    assert PYPROJECT["project"]["dependencies"] == []


def test_contract_topics_are_the_topics_the_stack_creates():
    declared = {t.name for t in kafka.declared_topics()}
    assert {*contracts.EVENT_TOPICS, contracts.DEAD_LETTER_TOPIC} <= declared
    assert set(contracts.EVENT_TIME_FIELDS) == set(contracts.EVENT_TOPICS)


def test_platform_common_needs_only_what_every_runtime_lock_holds():
    # requests, python-dotenv and pydantic-settings (with pydantic) are in the locks of every runtime that loads
    # the settings (mlflow: compose's mlflow-init runs stack.mlflow); the Flink job's venv and dbt's read only
    # contracts, which imports nothing
    # (module level: a client's library is imported inside its function, where only its runtimes call it)
    imported = set()
    for path in (REPO / "platform_common").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names} - {"platform_common", "__future__"}
    assert third_party == {"dotenv", "pydantic", "pydantic_settings", "requests"}
    for lock in ("stack", "flink", "spark", "airflow", "superset", "mlflow"):
        text = (REPO / "requirements" / f"{lock}.lock").read_text()
        assert "\nrequests==" in text, lock
        if lock != "flink":
            for package in ("python-dotenv", "pydantic", "pydantic-settings"):
                assert f"\n{package}==" in text, (lock, package)


def test_stack_imports_no_engine_code():
    # stack/ installs, starts, supervises and checks services; the engines' code (the job's deployment, the
    # connectors' registration, the warm-up) runs as their own commands, e.g. `python -m flink_jobs.deploy`
    engines = {"simulators", "debezium", "flink_jobs", "spark_ml", "benchmarks", "churn_platform", "clickhouse_server",
               "tests"}
    found = []
    for path in sorted((REPO / "stack").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in engines]
    assert not found, found

"""Debezium connector configs (debezium/connectors/*.json), registered idempotently with Kafka Connect.

Each file is `{"name": ..., "config": {...}}`; `${VAR}` placeholders are filled from the settings'
variables (`Settings.as_env()`: .env overlaid with the environment), so the same files serve the local
stack and compose. Secrets are `${env:VAR}` instead: Kafka Connect resolves those itself from the worker's
environment (its EnvVarConfigProvider), so the configs sent, stored and served by Connect never contain them.
Registration is `PUT /connectors/<name>/config`: it creates the connector or updates its config,
and re-sending an unchanged config changes nothing.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from platform_common.errors import StackError

CONNECTORS_DIR = Path(__file__).resolve().parent / "connectors"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render(text: str, env: Mapping[str, str]) -> str:
    """Replace every ${VAR} with its value in `env`; a missing one is a one-line error naming it."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        found = (env.get(name) or "").strip()
        if not found:
            raise StackError(f"connector config needs {name}; add it to .env (see .env.example)")
        return found
    return PLACEHOLDER.sub(value, text)


def load(env: Mapping[str, str], directory: Path = CONNECTORS_DIR) -> dict[str, dict[str, str]]:
    """name -> rendered config of every connector file, in file name order."""
    result = {}
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            name, config = doc["name"], doc["config"]
        except (ValueError, KeyError) as exc:
            raise StackError(f"{path.name}: not a connector config ({exc}); expected {{\"name\", \"config\"}}") from None
        rendered = json.loads(render(json.dumps(config), env))
        result[name] = {k: str(v) for k, v in rendered.items()}
    return result


def register(env: Mapping[str, str], url: str) -> list[str]:
    """PUT every connector's config; returns the names of connectors that were created or changed."""
    changed = []
    for name, config in load(env).items():
        current = requests.get(f"{url}/connectors/{name}/config", timeout=10)
        if current.ok and {k: v for k, v in current.json().items() if k != "name"} == config:
            continue
        response = requests.put(f"{url}/connectors/{name}/config", json=config, timeout=60)
        if not response.ok:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise StackError(f"registering connector {name} with Kafka Connect failed "
                             f"({response.status_code}): {' '.join(str(message).split())[:400]}")
        changed.append(name)
    if changed:
        time.sleep(2)  # Connect restarts a changed connector asynchronously; let wait_running see it
    return changed


def states(url: str, names: list[str] | None = None) -> dict[str, tuple[str, list[str]]]:
    """name -> (connector state, [task states]) for the given (default: all) connectors."""
    names = names if names is not None else requests.get(f"{url}/connectors", timeout=5).json()
    result = {}
    for name in names:
        response = requests.get(f"{url}/connectors/{name}/status", timeout=5)
        if not response.ok:
            result[name] = ("MISSING", [])
            continue
        status = response.json()
        result[name] = (status["connector"]["state"], [t["state"] for t in status.get("tasks", [])])
    return result


def summary(url: str, names: list[str]) -> str:
    """One line for `make status`: each connector with its state and task states."""
    parts = []
    for name, (state, tasks) in states(url, names).items():
        task_text = ",".join(tasks) if tasks else "no tasks"
        parts.append(f"{name} {state} [{task_text}]")
    return "; ".join(parts)


def wait_running(url: str, names: list[str], timeout: float = 60.0) -> None:
    """Wait until every connector and its tasks are RUNNING; a FAILED one is a one-line error."""
    deadline = time.monotonic() + timeout
    while True:
        pending = []
        for name in names:
            response = requests.get(f"{url}/connectors/{name}/status", timeout=5)
            status = response.json() if response.ok else {}
            connector = status.get("connector", {})
            tasks = status.get("tasks", [])
            for item in (connector, *tasks):
                if item.get("state") == "FAILED":
                    trace = (item.get("trace") or "").strip().splitlines()
                    causes = [line for line in trace if "Exception:" in line and not line.startswith("\t")]
                    reason = causes[-1] if causes else (trace[0] if trace else "no trace")
                    raise StackError(f"Debezium connector {name} FAILED: {reason[:300]}; "
                                     f"see GET {url}/connectors/{name}/status and the connect log")
            if connector.get("state") != "RUNNING" or not tasks or any(t.get("state") != "RUNNING" for t in tasks):
                pending.append(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"Debezium connector(s) {', '.join(pending)} not RUNNING after {timeout:.0f}s; "
                             f"see the connect log")
        time.sleep(0.5)

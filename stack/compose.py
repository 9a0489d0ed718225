"""The `docker compose` CLI, built here from its pinned Go module when the docker client lacks it.

Only what uses docker-compose.yml needs it (`make compose-check`, tests/unit/test_compose.py), so
`make setup` does not build it: a local-stack user never does, and the build takes minutes.
"""
from __future__ import annotations

import os
import re
import subprocess

from platform_common.config import REPO, TOOLS, ensure_env_file
from platform_common.errors import StackError
from stack.setup import _run, _stamped

# `docker compose` CLI plugin, built from stack/tools/docker-compose/go.mod where the docker client lacks it
COMPOSE_MODULE_DIR = REPO / "stack" / "tools" / "docker-compose"
COMPOSE_PLUGIN = TOOLS / "docker" / "cli-plugins" / "docker-compose"


def docker_compose_available() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _build_compose() -> None:
    COMPOSE_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
    version = re.search(r"docker/compose/v2 (v[\d.]+)", (COMPOSE_MODULE_DIR / "go.mod").read_text()).group(1)
    _run(["go", "-C", str(COMPOSE_MODULE_DIR), "build", "-o", str(COMPOSE_PLUGIN),
          "-ldflags", f"-X github.com/docker/compose/v2/internal.Version={version}",
          "github.com/docker/compose/v2/cmd"], "go-build-compose (Go module proxy)",
         "could not build the docker compose plugin; check network access to the Go module proxy",
         env={"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"})


def compose_env() -> dict[str, str]:
    """Environment additions under which `docker compose` works: none, or DOCKER_CONFIG pointing at the
    plugin built here (once; stamped with its go.mod/go.sum like every set-up step)."""
    if docker_compose_available():
        return {}
    inputs = "".join((COMPOSE_MODULE_DIR / f).read_text() for f in ("go.mod", "go.sum"))
    _stamped("compose", inputs, COMPOSE_PLUGIN, _build_compose)
    return {"DOCKER_CONFIG": str(TOOLS / "docker")}


def compose(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """`docker compose <args>` in the repository, building the plugin first if needed."""
    env = {**os.environ, **compose_env()}
    return subprocess.run(["docker", "compose", *args], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=timeout)


def check() -> str:
    """Validate docker-compose.yml (it reads .env, so that is created first); returns the compose version."""
    ensure_env_file()
    result = compose("config", "-q")
    if result.returncode != 0:
        raise StackError(f"docker-compose.yml is not valid: {result.stderr.strip()}")
    return compose("version", "--short").stdout.strip()

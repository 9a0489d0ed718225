"""Configuration errors end with one clear line naming the variable and the fix."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from platform_common import config
from platform_common.config import REPO, ensure_env_file
from platform_common.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / ".env"
    ensure_env_file(path)
    return path


def _set(path, name, value):
    lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{name}=")]
    if value is not None:
        lines.append(f"{name}={value}")
    path.write_text("\n".join(lines) + "\n")


def test_generated_env_has_every_variable_and_fresh_secrets(env_file, tmp_path):
    settings = config.load(env_file, environ={})
    example = config.dotenv_values(config.EXAMPLE_FILE)
    assert set(example) <= set(settings.raw)
    assert all(settings.raw[k] != "generate" for k in example)
    other = tmp_path / "other.env"
    ensure_env_file(other)
    # secrets are random per machine, never copied from the example
    assert config.dotenv_values(other)["POSTGRES_PASSWORD"] != settings["POSTGRES_PASSWORD"]
    assert len(settings["KAFKA_CLUSTER_ID"]) == 22
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"


def test_ensure_env_file_keeps_existing_values_and_adds_missing(env_file):
    _set(env_file, "POSTGRES_PASSWORD", "kept")
    _set(env_file, "MINIO_BUCKET", None)
    assert ensure_env_file(env_file) == ["MINIO_BUCKET"]
    values = config.dotenv_values(env_file)
    assert values["POSTGRES_PASSWORD"] == "kept" and values["MINIO_BUCKET"] == "lakehouse"
    assert ensure_env_file(env_file) == []


@pytest.mark.parametrize("value", ["99999", "0", "abc", "-1"])
def test_bad_port_is_one_clear_line(env_file, value):
    _set(env_file, "POSTGRES_PORT", value)
    with pytest.raises(ConfigError) as err:
        config.load(env_file, environ={})
    assert str(err.value) == f"POSTGRES_PORT={value!r} is not a valid port (1-65535); fix it in .env"


def test_bad_address_is_one_clear_line(env_file):
    _set(env_file, "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:notaport")
    with pytest.raises(ConfigError, match=r"^KAFKA_BOOTSTRAP_SERVERS='127.0.0.1:notaport' must look like host:port"):
        config.load(env_file, environ={})


def test_missing_variable_is_one_clear_line(env_file):
    _set(env_file, "MINIO_ROOT_PASSWORD", None)
    with pytest.raises(ConfigError) as err:
        config.load(env_file, environ={})
    assert str(err.value) == "MINIO_ROOT_PASSWORD is not set; add it to .env (see .env.example) or run `make setup`"


def test_environment_overrides_env_file(env_file):
    assert config.load(env_file, environ={"POSTGRES_PORT": "6543"}).postgres_port == 6543


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "stack", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_cli_prints_one_line_for_a_bad_port():
    result = _cli(["status"], {"POSTGRES_PORT": "70000"})
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: POSTGRES_PORT='70000' is not a valid port (1-65535); fix it in .env"]


def test_cli_prints_one_line_for_a_port_in_use(tmp_path):
    """`up` refuses to start a service whose port another process holds, naming port, service and variable."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {"POSTGRES_PORT": str(port), "DATA_DIR": str(tmp_path / "data")}
        try:
            result = _cli(["up", "postgres"], env)
        finally:
            _cli(["down"], env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: port {port} for postgres is already in use by another process; stop it or change POSTGRES_PORT in .env"]

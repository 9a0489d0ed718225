"""Configuration errors end with one clear line naming the variable and the fix."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

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
    env = settings.as_env()
    assert set(example) <= set(env)
    assert all(env[k] != "generate" for k in example)
    other = tmp_path / "other.env"
    ensure_env_file(other)
    # secrets are random per machine, never copied from the example
    assert config.dotenv_values(other)["POSTGRES_PASSWORD"] != settings.postgres_password
    assert len(settings.kafka_cluster_id) == 22
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


def test_missing_env_file_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path / ".env", environ={})
    assert str(err.value) == f".env not found in {tmp_path}; run `make setup` to generate it"


def test_placeholder_is_one_clear_line(env_file):
    _set(env_file, "SPARK_CONNECT_TOKEN", "generate")
    with pytest.raises(ConfigError) as err:
        config.load(env_file, environ={})
    assert str(err.value) == "SPARK_CONNECT_TOKEN still has the placeholder 'generate'; run `make setup` to generate it"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("CDC_SINK_BATCH_ROWS", "0", "is not a positive whole number"),
    ("SUPERSET_WORKERS", "two", "is not a positive whole number"),
    ("STARTUP_TIMEOUT", "soon", "is not a positive number of seconds"),
    ("CHURN_API_REFRESH_SECONDS", "-5", "is not a positive number of seconds"),
    ("CHURN_TRAIN_JOBS", "0", "is not a number of worker processes (1, 2, ...; joblib's -1 = one per core)"),
    ("MINIO_ENDPOINT", "http://127.0.0.1", "must look like host:port with a port in 1-65535"),
    ("FLINK_REST_URL", "127.0.0.1:8081", "must look like http://host:port"),
    ("SPARK_CONNECT_URL", "http://localhost:15002", "must look like sc://localhost:15002"),
    ("SPARK_STANDALONE_URL", "spark://127.0.0.1", "must look like spark://127.0.0.1:7077"),
    ("FLINK_JOB_POSTGRES_URL", "postgresql://127.0.0.1:5432/analytics",
     "must look like jdbc:postgresql://host:port/database"),
    ("AIRFLOW_PORT", "8080.0", "is not a valid port (1-65535)"),
])
def test_bad_value_is_one_clear_line(env_file, name, value, expected):
    _set(env_file, name, value)
    with pytest.raises(ConfigError) as err:
        config.load(env_file, environ={})
    assert str(err.value) == f"{name}={value!r} {expected}; fix it in .env"


def test_values_are_typed_and_addresses_split(env_file):
    _set(env_file, "MINIO_ENDPOINT", "https://minio.internal:9443")
    settings = config.load(env_file, environ={"CHURN_TRAIN_JOBS": "-1", "STARTUP_TIMEOUT": " 90 "})
    assert settings.postgres_port == 5432 and settings.airflow_parallelism == 4 and settings.churn_train_jobs == -1
    assert settings.startup_timeout == 90.0 and settings.churn_api_refresh_seconds == 60.0
    assert (settings.kafka_host, settings.kafka_port) == ("127.0.0.1", 9092)
    assert (settings.connect_host, settings.connect_port) == ("127.0.0.1", 8083)
    assert (settings.minio_host, settings.minio_port, settings.minio_secure) == ("minio.internal", 9443, True)
    assert settings.data_dir == REPO / ".data"  # relative: under the repository
    assert settings.postgres_dsn("bi", "pw") == ("host=127.0.0.1 port=5432 user=bi password=pw dbname=analytics "
                                                 "connect_timeout=3")
    assert settings.postgres_dsn("u", "p", dbname="postgres").endswith(" dbname=postgres connect_timeout=3")
    assert config.load(env_file, environ={"DATA_DIR": "/srv/platform"}).data_dir == Path("/srv/platform")


def test_optional_variables_default_when_unset(env_file):
    settings = config.load(env_file, environ={})
    assert settings.alert_email_to is None and settings.airflow_conn_smtp_default is None
    assert settings.cdc_sink_host == "127.0.0.1"
    settings = config.load(env_file, environ={"ALERT_EMAIL_TO": "oncall@example.com", "CDC_SINK_HOST": "0.0.0.0"})
    assert settings.alert_email_to == "oncall@example.com" and settings.cdc_sink_host == "0.0.0.0"


def test_as_env_is_what_was_read_with_the_original_strings(env_file):
    _set(env_file, "STARTUP_TIMEOUT", "180")
    settings = config.load(env_file, environ={"CLICKHOUSE_PORT": "8124", "PATH": "/usr/bin"})
    env = settings.as_env()
    assert env["STARTUP_TIMEOUT"] == "180" and settings.startup_timeout == 180.0  # not normalised to "180.0"
    assert env["CLICKHOUSE_PORT"] == "8124" and env["PATH"] == "/usr/bin"  # the environment wins, and is all there
    assert env == {**config.dotenv_values(env_file), "CLICKHOUSE_PORT": "8124", "PATH": "/usr/bin"}
    env["PATH"] = "changed"
    assert settings.as_env()["PATH"] == "/usr/bin"  # a copy


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


def test_every_example_variable_has_a_field_and_every_field_a_variable():
    example = set(config.dotenv_values(config.EXAMPLE_FILE))
    fields = {config.variable(name) for name in config.Settings.model_fields}
    assert fields - config.OPTIONAL == example, (
        f"in .env.example without a Settings field: {sorted(example - fields)}; "
        f"Settings fields not in .env.example: {sorted(fields - config.OPTIONAL - example)}")
    assert fields >= config.OPTIONAL and not config.OPTIONAL & example
    # the optional ones are documented where .env.example shows them (commented out) or where they are set
    assert all(not info.is_required() for name, info in config.Settings.model_fields.items()
               if config.variable(name) in config.OPTIONAL)


# Settings are attributes (settings.postgres_port), never looked up by name: no `settings["X"]`, no `.raw`
LOOKUP = re.compile(r"\bsettings\[|\.raw\[|\.raw\.get\(|\bdef __getitem__")
# a subscript by a variable name of .env.example, e.g. stack_up["POSTGRES_DB"] (a Settings under another name);
# allowed on the plain string maps of an environment: os.environ, a subprocess's env, dotenv_values(...)
BY_NAME = re.compile(r"""([\w.()"'\\\[\]]*)\[\\?["']([A-Z][A-Z0-9_]*)\\?["']\]""")
ENV_MAP = re.compile(r"""(\b(environ|env|_env|environment|defaults|values)|as_env\(\)"""
                     r"""|\[\\?["']environment\\?["']\])$""")


def test_no_string_lookups_of_settings_come_back():
    example = set(config.dotenv_values(config.EXAMPLE_FILE))
    tracked = subprocess.run(["git", "ls-files", "-z", "*.py", "*.ipynb"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")
    found = []
    for path in filter(None, tracked):
        # clickhouse_server's `settings` are ClickHouse query settings (a dict), not the platform's
        if path.startswith(("clickhouse_server/", "tests/e2e/previous_layout/")) or path == "tests/unit/test_config.py":
            continue
        for n, line in enumerate((REPO / path).read_text(encoding="utf-8").splitlines(), 1):
            by_name = [m for m in BY_NAME.finditer(line) if m.group(2) in example and not ENV_MAP.search(m.group(1))]
            if LOOKUP.search(line) or by_name:
                found.append(f"{path}:{n}: {line.strip()}")
    assert not found, "use the typed attributes (settings.postgres_port), not lookups by name:\n" + "\n".join(found)

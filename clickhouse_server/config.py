"""Configuration from environment variables; a bad value stops the server with one line."""
from __future__ import annotations

import os
from dataclasses import dataclass


class ConfigError(Exception):
    """Raised with a one-line, user-facing explanation."""


@dataclass(frozen=True)
class User:
    name: str
    password: str
    readonly: bool  # True -> every connection of this user runs with readonly=2


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    data_dir: str
    users: dict[str, User]
    max_body_bytes: int
    workers: int  # threads that run chDB calls (one per concurrent query)
    graceful_timeout: int
    max_memory_percent: int  # of the machine's RAM, for all queries together (chDB's max_server_memory_usage_to_ram_ratio)


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range [{lo}, {hi}]")
    return value


def _required(env: dict[str, str], name: str, what: str) -> str:
    if name not in env:
        raise ConfigError(f"{name} is not set ({what})")
    return env[name]


def load(env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    data_dir = _required(env, "CLICKHOUSE_DATA_DIR", "the directory where chDB keeps its data")
    if not data_dir.strip():
        raise ConfigError("CLICKHOUSE_DATA_DIR is empty (the directory where chDB keeps its data)")
    admin = _required(env, "CLICKHOUSE_USER", "the read-write ClickHouse user name")
    if not admin:
        raise ConfigError("CLICKHOUSE_USER is empty (the read-write ClickHouse user name)")
    users = {admin: User(admin, _required(env, "CLICKHOUSE_PASSWORD", f"the password of {admin}"), False)}
    bi = env.get("CLICKHOUSE_BI_USER", "")
    if bi:
        if bi == admin:
            raise ConfigError("CLICKHOUSE_BI_USER must differ from CLICKHOUSE_USER")
        users[bi] = User(bi, _required(env, "CLICKHOUSE_BI_PASSWORD", f"the password of {bi}"), True)
    return Config(
        host=env.get("CLICKHOUSE_HOST") or "127.0.0.1",
        port=_int(env, "CLICKHOUSE_PORT", 8123, 1, 65535),
        data_dir=os.path.abspath(data_dir),
        users=users,
        max_body_bytes=_int(env, "CLICKHOUSE_MAX_BODY_BYTES", 512 * 1024 * 1024, 1, 1 << 40),
        workers=_int(env, "CLICKHOUSE_WORKERS", 64, 2, 1024),
        graceful_timeout=_int(env, "CLICKHOUSE_GRACEFUL_TIMEOUT", 30, 0, 3600),
        max_memory_percent=_int(env, "CLICKHOUSE_MAX_MEMORY_PERCENT", 40, 5, 95),
    )

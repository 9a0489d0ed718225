"""Fixtures: the chDB-backed ClickHouse HTTP server as a real subprocess.

Started exactly as the stack starts it (`python -m clickhouse_server`, configured by
environment variables) on a free 127.0.0.1 port with a temporary data directory, ready when
/ping answers, stopped with SIGTERM.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "admin-secret")
BI = ("analyst", "bi-secret")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dir: Path
    log_path: Path
    extra_env: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    admin: tuple = ADMIN  # (user, password) of the read-write user
    bi: tuple = BI  # (user, password) of the read-only user

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(self.port),
            "CLICKHOUSE_DATA_DIR": str(self.data_dir),
            "CLICKHOUSE_USER": ADMIN[0], "CLICKHOUSE_PASSWORD": ADMIN[1],
            "CLICKHOUSE_BI_USER": BI[0], "CLICKHOUSE_BI_PASSWORD": BI[1],
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> Server:
        with open(self.log_path, "ab") as log:  # the server keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "clickhouse_server"], cwd=REPO,
                                         env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "ping", timeout=1).text == "Ok.\n":
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer /ping within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, sql: str, auth=ADMIN, data=None, params=None, headers=None, method="POST", **kw):
        p = {"query": sql} if sql is not None else {}
        p.update(params or {})
        return requests.request(method, self.url, params=p, data=data, auth=auth, headers=headers,
                                timeout=kw.pop("timeout", 60), **kw)

    def ok(self, sql: str, **kw) -> str:
        r = self.query(sql, **kw)
        assert r.status_code == 200, r.text
        return r.text


def make_server(tmp_path_factory, name: str, **extra_env) -> Server:
    root = tmp_path_factory.mktemp(name)
    return Server(data_dir=root / "data", log_path=root / "server.log",
                  extra_env={k: str(v) for k, v in extra_env.items()})


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One shared server (64 MiB body limit so the oversized-body test stays cheap)."""
    srv = make_server(tmp_path_factory, "chserver", CLICKHOUSE_MAX_BODY_BYTES=64 * 1024 * 1024).start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log()


@pytest.fixture
def fresh_server(tmp_path_factory):
    """A private server for tests that stop, kill or restart it."""
    srv = make_server(tmp_path_factory, "chfresh")
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop()


@pytest.fixture
def client(server):
    import clickhouse_connect

    c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=ADMIN[0], password=ADMIN[1])
    yield c
    c.close()


@pytest.fixture
def table_name(request, server):
    """A unique table name, dropped afterwards."""
    name = "t_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:60]
    server.ok(f"DROP TABLE IF EXISTS {name}")
    yield name
    server.query(f"DROP TABLE IF EXISTS {name}")

"""supervisord: renders its config from the service list and talks to it over XML-RPC.

supervisord (PyPI `supervisor`) does the process supervision: restarts on crash, log
files, signals. We only decide the start order and wait for health between steps.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from platform_common.config import REPO, Settings
from platform_common.errors import StackError
from stack.service import Service


class Supervisor:
    def __init__(self, settings: Settings):
        self.dir = settings.data_dir / "supervisor"
        self.log_dir = settings.data_dir / "logs"
        self.conf = self.dir / "supervisord.conf"
        self.socket = self.dir / "supervisor.sock"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def render(self, services: list[Service]) -> str:
        parts = [
            "[unix_http_server]", f"file={self.socket}", "chmod=0700", "",
            "[supervisord]", f"logfile={self.log_dir / 'supervisord.log'}", f"pidfile={self.dir / 'supervisord.pid'}",
            "logfile_maxbytes=10MB", "logfile_backups=2", f"directory={REPO}", "", "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.socket}", "",
        ]
        for svc in services:
            env = ",".join(f'{k}="{v}"' for k, v in svc.environment.items())
            parts += [
                f"[program:{svc.name}]",
                f"command={shlex.join(svc.command)}",
                f"directory={REPO}",
                "autostart=false",  # `stack up` starts them in dependency order
                "autorestart=true",
                "startsecs=3",
                "startretries=3",
                f"stopsignal={svc.stop_signal}",
                f"stopwaitsecs={svc.stop_wait_seconds}",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self.log_path(svc.name)}",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=3",
            ]
            if svc.user:
                parts.append(f"user={svc.user}")
            if env:
                parts.append(f"environment={env}")
            parts.append("")
        return "\n".join(parts)

    # -- daemon lifecycle -------------------------------------------------
    def rpc(self):
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.rpc().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def ensure_running(self, services: list[Service]) -> None:
        """Start supervisord with the current service list, or reload it if the list changed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        text = self.render(services)
        changed = not self.conf.exists() or self.conf.read_text() != text
        if changed:
            self.conf.write_text(text)
            self.conf.chmod(0o600)  # service environments may carry credentials (Airflow's database URL)
        if not self.running():
            self.socket.unlink(missing_ok=True)
            subprocess.run([str(Path(sys.executable).parent / "supervisord"), "-c", str(self.conf)], check=True)
            deadline = time.monotonic() + 15
            while not self.running():
                if time.monotonic() > deadline:
                    raise StackError(f"supervisord did not start; see {self.log_dir / 'supervisord.log'}")
                time.sleep(0.2)
        elif changed:
            # apply added/changed/removed programs; running ones whose config changed restart
            added, changed_groups, removed = self.rpc().reloadConfig()[0]
            for name in removed + changed_groups:
                try:
                    self.rpc().stopProcessGroup(name)
                except xmlrpc.client.Fault:
                    pass
                self.rpc().removeProcessGroup(name)
            for name in added + changed_groups:
                self.rpc().addProcessGroup(name)

    def info(self, name: str) -> dict | None:
        try:
            return self.rpc().getProcessInfo(name)
        except (OSError, xmlrpc.client.Fault):
            return None

    def start(self, name: str) -> None:
        info = self.info(name)
        if info and info["statename"] in ("RUNNING", "STARTING"):
            return
        try:
            self.rpc().startProcess(name, False)
        except xmlrpc.client.Fault as exc:
            raise StackError(f"{name} failed to start ({exc.faultString}); see {self.log_path(name)}") from None

    def stop(self, name: str) -> None:
        info = self.info(name)
        if info and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            try:
                self.rpc().stopProcess(name, True)
            except xmlrpc.client.Fault:
                pass

    def shutdown(self) -> None:
        pid_file = self.dir / "supervisord.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        try:
            self.rpc().shutdown()
        except (OSError, xmlrpc.client.Fault):
            return
        deadline = time.monotonic() + 60
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)

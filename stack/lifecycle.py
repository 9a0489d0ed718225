"""`up`, `down` and `status`: start services as their dependencies become healthy, provision them; stop; show."""
from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from graphlib import TopologicalSorter

import psutil
from rich.table import Table
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from platform_common.config import Settings
from platform_common.errors import StackError
from platform_common.net import port_open
from stack.service import Service
from stack.supervisor import Supervisor
from stack.ui import console


def wait_healthy(svc: Service, sup: Supervisor, timeout: float, abort: threading.Event | None = None) -> bool:
    """Poll the service's health until it passes, the timeout ends, or supervisord gives up on it."""
    def probe() -> bool:
        if abort is not None and abort.is_set():
            raise StackError(f"{svc.name}: start-up stopped, another service failed")
        info = sup.info(svc.name)
        if info and info["statename"] in ("FATAL", "EXITED"):
            raise StackError(f"{svc.name} exited during start-up; see {sup.log_path(svc.name)}")
        return svc.healthy()

    return _until_true(probe, timeout, interval=0.5)


def _until_true(fn, timeout: float, interval: float) -> bool:
    """Call fn until it returns True (→ True) or `timeout` seconds pass (→ False)."""
    return Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_result(lambda ok: not ok),
                    retry_error_callback=lambda _: False)(fn)


def up(settings: Settings, services: list[Service], all_services: list[Service]) -> None:
    """Start the services, each as soon as what it depends on is healthy and provisioned: independent ones
    start side by side (Superset's two minutes overlap Kafka, Connect, Flink and Airflow). The first failure
    stops the others' waiting and is raised once every started thread has returned."""
    sup = Supervisor(settings)
    sup.ensure_running(all_services)
    by_name = {svc.name: svc for svc in services}
    order = TopologicalSorter({svc.name: [d for d in svc.depends_on if d in by_name] for svc in services})
    order.prepare()
    abort = threading.Event()
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(services) or 1, thread_name_prefix="up") as pool, \
            console.status("starting ...") as spinner:
        starting: dict[Future, str] = {}
        while order.is_active() and not errors:
            for name in order.get_ready():
                starting[pool.submit(_start, by_name[name], sup, settings, abort)] = name
            spinner.update(f"waiting for {', '.join(sorted(starting.values()))} to become healthy ...")
            done, _ = wait(starting, return_when=FIRST_COMPLETED)
            for future in done:
                name = starting.pop(future)
                if future.exception() is not None:
                    errors.append(future.exception())
                    abort.set()
                else:
                    order.done(name)
        wait(starting)
    if errors:
        raise errors[0]


def _start(svc: Service, sup: Supervisor, settings: Settings, abort: threading.Event) -> None:
    """Start one service (unless it runs), wait until it is healthy, provision it."""
    started = time.monotonic()
    info = sup.info(svc.name)
    running = bool(info and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"))
    if not running:
        for port in (p for p in (svc.port, *svc.extra_ports) if p):
            if port_open(port):
                raise StackError(f"port {port} for {svc.name} is already in use by another process; "
                                 f"stop it or change {svc.port_setting} in .env")
        if svc.prepare:
            svc.prepare()
        sup.start(svc.name)
    if not wait_healthy(svc, sup, settings.startup_timeout, abort):
        raise StackError(f"{svc.name} did not become healthy within {settings.startup_timeout:.0f}s; "
                         f"see {sup.log_path(svc.name)}")
    if svc.provision:
        svc.provision()
    verb = "already running" if running else "started"
    console.print(f"[green]✓[/] {svc.name:<10} {verb} and healthy ({time.monotonic() - started:.1f}s)")


def down(settings: Settings, services: list[Service]) -> None:
    sup = Supervisor(settings)
    if not sup.running():
        console.print("nothing is running")
        return
    for svc in reversed(services):
        with console.status(f"stopping {svc.name} ..."):
            sup.stop(svc.name)
        console.print(f"[yellow]■[/] {svc.name} stopped")
    sup.shutdown()
    busy = [f"{svc.name}:{port}" for svc in services for port in (svc.port, *svc.extra_ports) if port and port_open(port)]
    if busy:
        raise StackError(f"still listening after stop: {', '.join(busy)}")


@dataclass
class Row:
    name: str
    state: str
    pid: int | None
    port: int
    healthy: bool
    rss_mib: float | None
    url: str
    details: str


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a service's whole process tree (PostgreSQL forks a process per connection)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in (proc, *proc.children(recursive=True))) / 2**20
    except psutil.Error:
        return None


def probe(svc: Service, patience: float = 0) -> bool:
    """The service's health probe, repeated for up to `patience` seconds while it fails."""
    return svc.healthy() if patience <= 0 else _until_true(svc.healthy, patience, interval=1)


def rows(settings: Settings, services: list[Service], patience: float = 0) -> list[Row]:
    """One row per service. `patience`: how long a running service's failing probe is retried before it
    counts as unhealthy (a busy service on a loaded machine can miss one probe's timeout)."""
    sup = Supervisor(settings)
    up_ = sup.running()
    result = []
    for svc in services:
        info = sup.info(svc.name) if up_ else None
        state = info["statename"] if info else "STOPPED"
        # STARTING: supervisord waits startsecs before it says RUNNING; the probe is what counts
        healthy = state in ("RUNNING", "STARTING") and probe(svc, patience)
        details = svc.details() if healthy and svc.details else ""
        pid = info["pid"] if info and info["pid"] else None
        result.append(Row(svc.name, state, pid, svc.port, healthy, rss_mib(pid), svc.url, details))
    return result


def status(settings: Settings, services: list[Service], required: list[Service] | None = None,
           patience: float = 0) -> bool:
    """Print every service's row; True when the `required` ones (default: all) are healthy."""
    table = Table(title="platform services")
    for column in ("service", "state", "pid", "port", "health", "memory", "url / address", "details"):
        table.add_column(column)
    must = {svc.name for svc in (services if required is None else required)}
    all_ok = True
    for row in rows(settings, services, patience):
        all_ok &= row.healthy or row.name not in must
        health = "[green]healthy[/]" if row.healthy else ("[red]unhealthy[/]" if row.state in ("RUNNING", "STARTING") else "-")
        memory = f"{row.rss_mib:.0f} MiB" if row.rss_mib is not None else "-"
        table.add_row(row.name, row.state, str(row.pid or "-"), str(row.port or "-"), health, memory, row.url, row.details)
    console.print(table)
    console.print(f"logs: {Supervisor(settings).log_dir}   credentials: .env")
    return all_ok

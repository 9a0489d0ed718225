"""A simulated population sent through the real streaming path by the tests: customers into PostgreSQL
(crm), their events into Kafka, each run's ledger under `directory`, for simulators.pipeline.wait."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from simulators import run, run_customers


def send(settings, directory: Path, prefix: str, customers: int, days: int, seed: int,
         start: dt.datetime | None = None):
    """Customers, then their events; returns (customer ledger, event ledger). The churn ground truth is
    kept in the customer ledger folder, never written over the platform's default one. `start`: the first
    simulated instant (default: `days` before today's midnight, UTC)."""
    cl = run_customers(customers=customers, seed=seed, days=days, id_prefix=prefix, quiet=True, start=start,
                       write_ground_truth=False, ledger_dir=directory / "customers", settings=settings)
    ev = run(customers=customers, seed=seed, days=days, id_prefix=prefix, quiet=True, start=start,
             ledger_dir=directory / "events", settings=settings)
    return cl, ev


def ledgers(directory: Path) -> list[Path]:
    """The ledger folders of `send`, what simulators.pipeline.wait checks."""
    return [directory / "events", directory / "customers"]

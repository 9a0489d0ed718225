"""Simulators of the platform's input: customer master data (PostgreSQL) and events (Kafka).

    from simulators import run, run_customers
    ledger = run(count=10_000, seed=7, sink="memory", quiet=True, ledger="none")
    ledger.web.valid, ledger.purchases.duplicates, ledger.sink.messages   # what was sent

See simulators/README.md for the record formats, the ledger and the CLI.
"""
from simulators.customers import CustomerConfig, CustomerLedger, run_customers
from simulators.events import EventConfig
from simulators.ledger import EventLedger
from simulators.runner import run

__all__ = ["CustomerConfig", "CustomerLedger", "EventConfig", "EventLedger", "run", "run_customers"]

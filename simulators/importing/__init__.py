"""Bring your own data: `python -m simulators import MAPPING.yaml` loads CSV/Parquet files of customers,
orders (with or without line items) and web events into the platform through the simulators' own
sinks and ledger. simulators/importing/README.md describes the mapping file and the report.

    mapping.py  the mapping file (YAML) and its checks
    files.py    reading CSV / Parquet rows
    values.py   one cell -> a contract value (times, time zones, epochs, decimal commas, ids)
    records.py  one row -> a contract record (the Flink job's rules)
    report.py   rejected rows, counted per reason and written to a CSV
    run.py      the import: customers -> crm.customers, events and orders -> Kafka, ledger, report
"""
from simulators.importing.mapping import MappingError, load
from simulators.importing.run import ImportConfig, run_import

__all__ = ["ImportConfig", "MappingError", "load", "run_import"]

"""The simulator's point-in-time churn rows for `make bench b=churn_model` (main venv; needs ClickHouse).

    python -m benchmarks.helpers.churn_sim_rows make --customers 3000 --days 90 [--seed 42]   # last line: the schema
    python -m benchmarks.helpers.churn_sim_rows drop SCHEMA

`make`: N simulated customers and their events over D days (the simulators, in-process) as CDC mirror rows
into a throw-away mirror `cdc_benchc_<id>` (tests/support/cdc_mirror.py: the rows the CDC sink would
write, with every customer version), then dbt's churn_features and the models it reads into the schema
`dbt_benchc_<id>`, as of the day after the history. The hidden churn dates go to <schema>.ground_truth
(customer_id, churn_date) for the label check; they are never a feature. `drop` removes both databases.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from platform_common import clients, config
from platform_common.config import REPO
from tests.support import cdc_mirror


def make(customers: int, days: int, seed: int) -> str:
    client = clients.clickhouse(config.load())
    key = uuid.uuid4().hex[:8]
    cdc_db, schema = f"cdc_benchc_{key}", f"dbt_benchc_{key}"
    t0 = time.perf_counter()
    sim, _ = cdc_mirror.simulate(customers, days, seed=seed)
    cdc_mirror.create_mirror(client, cdc_db)
    sim.rows.insert(client, cdc_db)
    t_sim = time.perf_counter() - t0
    snapshot = sim.end.date()  # the history ends at a midnight: the day after its last day
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, str(REPO / "dbt" / "run.py"), "run", "--select", "+churn_features",
             "--vars", json.dumps({"cdc_database": cdc_db, "snapshot_date": snapshot.isoformat()}),
             "--target-path", f"{tmp}/target", "--log-path", f"{tmp}/logs"],
            capture_output=True, text=True, env={**os.environ, "DBT_TARGET_SCHEMA": schema}, cwd=REPO, timeout=3600)
    if result.returncode != 0:
        drop(schema)
        raise SystemExit(f"dbt run failed:\n{result.stdout[-3000:]}")
    client.command(f"CREATE TABLE {schema}.ground_truth (customer_id String, churn_date Nullable(Date)) "
                   "ENGINE = MergeTree ORDER BY customer_id")
    client.insert(f"{schema}.ground_truth",
                  [[c.customer_id, None if c.churn_ms is None else cdc_mirror._ts(c.churn_ms).date()]
                   for c in sim.population.customers], column_names=["customer_id", "churn_date"])
    print(json.dumps({"simulate_s": round(t_sim, 1), "dbt_s": round(time.perf_counter() - t0 - t_sim, 1),
                      "snapshot_date": snapshot.isoformat()}))
    return schema


def drop(schema: str) -> None:
    client = clients.clickhouse(config.load())
    client.command(f"DROP DATABASE IF EXISTS {schema}")
    client.command(f"DROP DATABASE IF EXISTS {schema.replace('dbt_benchc_', 'cdc_benchc_')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["make", "drop"])
    parser.add_argument("schema", nargs="?")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.command == "drop":
        drop(args.schema)
    else:
        print(make(args.customers, args.days, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

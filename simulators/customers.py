"""The customer simulator: master data in PostgreSQL `crm.customers`, changed over time.

The population (population.py) gives every customer's initial row. A deterministic timeline of
changes runs over the history window: profile updates (email, country), subscription tier changes
(churners often downgrade before they leave) and deletions (some churners ask to be forgotten,
a few other accounts are closed). The timeline is applied in event-time order, one transaction per
simulated day, so CDC (Debezium) sees inserts, updates and deletes spread over many transactions.
`updated_at` is the simulated time of the change (the current time in live mode).

Idempotent: rows are upserted with `ON CONFLICT ... WHERE crm.customers.updated_at <
EXCLUDED.updated_at`, so re-running the same seed leaves rows that are already up to date
untouched (no CDC noise) and ends in the same final state; a deleted customer is re-inserted
and deleted again, because a missing row cannot tell "never written" from "deleted".

Live mode (after the backfill): `rate` random changes per second stamped with the current time,
until `duration` seconds or `count` changes.

Writes as the least-privilege role POSTGRES_SIMULATOR_USER (SELECT/INSERT/UPDATE/DELETE on crm).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simulators import catalog
from simulators.population import DAY_MS, Population, ms_to_datetime, time_window
from simulators.population import build as build_population
from simulators.progress import ProgressView
from simulators.rng import stream
from simulators.sinks import SimulatorError

COLUMNS = ("customer_id", "email", "signup_date", "country", "acquisition_channel", "subscription_tier",
           "updated_at")
TIER_ORDER = ["free", "basic", "premium"]


@dataclass
class CustomerConfig:
    mode: str = "backfill"              # backfill | live (backfill first, then live changes)
    customers: int = 5000
    seed: int = 42
    days: float = 120.0
    start: dt.datetime | None = None
    id_prefix: str = "C"
    rate: float = 2.0                   # live: changes per second
    duration: float | None = None       # live: seconds
    count: int | None = None            # live: number of changes
    ledger: str = "summary"             # none | summary
    ledger_dir: Path | None = None
    run_id: str | None = None
    quiet: bool = False
    write_ground_truth: bool = True

    def window(self) -> tuple[int, int]:
        return time_window(self.start, self.days)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = ms_to_datetime(self.window()[0]).isoformat()
        d["ledger_dir"] = str(self.ledger_dir) if self.ledger_dir else None
        return d


@dataclass(frozen=True)
class Change:
    t_ms: int
    customer_id: str
    op: str                # insert | update | delete
    field: str | None      # email | country | subscription_tier (updates)
    old: str | None
    new: str | None


def _row(c, t_ms: int) -> dict[str, Any]:
    return {"customer_id": c.customer_id, "email": c.email, "signup_date": c.signup_date,
            "country": c.country, "acquisition_channel": c.acquisition_channel,
            "subscription_tier": c.subscription_tier, "updated_at": t_ms}


def timeline(pop: Population) -> list[Change]:
    """Every change of the history window, in time order (deterministic for the population)."""
    rng = stream(pop.seed, "customer-changes")
    start, end = pop.start_ms, pop.end_ms
    changes: list[tuple[int, int, int, Change]] = []
    for c in pop.customers:
        if c.signup_ms >= end:
            continue
        ops: list[Change] = [Change(c.signup_ms, c.customer_id, "insert", None, None, None)]
        active_from = max(c.signup_ms, start)
        span = end - active_from

        def at(u: float) -> int:
            t = active_from + int(u * span)  # noqa: B023 - called only within this iteration
            return t - t % 1000

        email, country, tier = c.email, c.country, c.subscription_tier
        if rng.random() < 0.10:
            domain = catalog.EMAIL_DOMAINS[rng.randrange(len(catalog.EMAIL_DOMAINS))]
            new = f"{c.first_name}.{c.last_name}.{c.idx + 1}.{rng.randrange(100, 1000)}@{domain}"
            ops.append(Change(at(rng.random()), c.customer_id, "update", "email", email, new))
        if rng.random() < 0.02:
            new = catalog.COUNTRIES[rng.randrange(len(catalog.COUNTRIES))][0]
            if new != country:
                ops.append(Change(at(rng.random()), c.customer_id, "update", "country", country, new))
        if rng.random() < 0.18:
            i = TIER_ORDER.index(tier)
            j = i + 1 if i == 0 or (i == 1 and rng.random() < 0.6) else i - 1
            ops.append(Change(at(rng.random()), c.customer_id, "update", "subscription_tier", tier, TIER_ORDER[j]))
        churn = c.churn_ms if c.churn_ms is not None and c.churn_ms < end else None
        if churn is not None and rng.random() < 0.5 and tier != "free":
            t = max(active_from, churn - int(rng.random() * 14 * DAY_MS))
            ops.append(Change(t - t % 1000, c.customer_id, "update", "subscription_tier", None, "free"))
        delete_at = None
        if churn is not None and rng.random() < 0.12:
            delete_at = churn + int((3 + rng.random() * 27) * DAY_MS)
        elif rng.random() < 0.003:
            delete_at = at(rng.random())
        if delete_at is not None and delete_at < end:
            ops.append(Change(delete_at - delete_at % 1000, c.customer_id, "delete", None, None, None))
        ops.sort(key=lambda ch: (ch.t_ms, ch.op == "delete"))
        state = {"email": email, "country": country, "subscription_tier": tier}
        for n, ch in enumerate(ops):
            if ch.op == "update":   # fill in the true old value in timeline order
                ch = dataclasses.replace(ch, old=state[ch.field])
                if ch.old == ch.new:
                    continue
                state[ch.field] = ch.new
            changes.append((ch.t_ms, c.idx, n, ch))
            if ch.op == "delete":
                break
    changes.sort(key=lambda x: x[:3])
    return [ch for *_, ch in changes]


class CustomerLedger:
    """What the customer simulator did and the final state `crm.customers` must have for its ids."""

    def __init__(self, run_id: str, config: dict[str, Any], pop: Population):
        self.run_id = run_id
        self.config = config
        self.population = pop
        self.inserts = 0
        self.updates: dict[str, int] = {"email": 0, "country": 0, "subscription_tier": 0}
        self.deletes = 0
        self.transactions = 0
        self.rows_changed = 0          # rows Postgres actually inserted/updated/deleted
        self.final: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.changes: list[Change] = []
        self.started_at = dt.datetime.now(dt.UTC)
        self.finished_at: dt.datetime | None = None
        self.directory: Path | None = None

    def apply(self, ch: Change, base: dict[str, Any] | None = None) -> None:
        self.changes.append(ch)
        if ch.op == "insert":
            self.inserts += 1
            self.final[ch.customer_id] = base
            self.deleted.discard(ch.customer_id)
        elif ch.op == "update":
            self.updates[ch.field] += 1
            row = self.final[ch.customer_id]
            row[ch.field] = ch.new
            row["updated_at"] = ch.t_ms
        else:
            self.deletes += 1
            self.final.pop(ch.customer_id, None)
            self.deleted.add(ch.customer_id)

    def final_rows(self) -> list[tuple]:
        """The expected rows, as (customer_id, email, signup_date, country, channel, tier, updated_at)."""
        return [tuple(r[k] if k != "updated_at" else ms_to_datetime(r[k]) for k in COLUMNS)
                for _, r in sorted(self.final.items())]

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": "customers", "config": self.config,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "inserts": self.inserts, "updates": dict(self.updates), "updates_total": sum(self.updates.values()),
                "deletes": self.deletes, "transactions": self.transactions, "rows_changed": self.rows_changed,
                "final_rows": len(self.final), "deleted_customers": len(self.deleted),
                "files": ["summary.json", "customers_final.csv", "changes.csv", "churn_ground_truth.csv"]}

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "customers_final.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            for row in self.final_rows():
                w.writerow([*row[:2], row[2].isoformat(), *row[3:6], row[6].isoformat()])
        with (directory / "changes.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["time", "customer_id", "op", "field", "old", "new"])
            for ch in self.changes:
                w.writerow([ms_to_datetime(ch.t_ms).isoformat(), ch.customer_id, ch.op, ch.field or "",
                            ch.old or "", ch.new or ""])
        self.population.write_ground_truth(directory / "churn_ground_truth.csv")
        (directory / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        self.directory = directory
        return directory


_UPSERT = """
INSERT INTO crm.customers AS c (customer_id, email, signup_date, country, acquisition_channel,
                                subscription_tier, updated_at)
SELECT customer_id, email, signup_date, country, acquisition_channel, subscription_tier, updated_at
  FROM sim_customers_batch
ON CONFLICT (customer_id) DO UPDATE
   SET email = EXCLUDED.email, signup_date = EXCLUDED.signup_date, country = EXCLUDED.country,
       acquisition_channel = EXCLUDED.acquisition_channel, subscription_tier = EXCLUDED.subscription_tier,
       updated_at = EXCLUDED.updated_at
 WHERE c.updated_at < EXCLUDED.updated_at
"""


class CustomerWriter:
    """Upserts (newer updated_at wins) and deletes crm.customers rows, one transaction per apply()."""

    def __init__(self, dsn: str):
        import psycopg
        try:
            self.conn = psycopg.connect(dsn)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise SimulatorError(f"PostgreSQL is not reachable as the simulator role ({first}); "
                                 f"start it with `make up s=postgres`") from None
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS sim_customers_batch "
                          "(LIKE crm.customers INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        self.conn.commit()

    def apply(self, upserts: list[dict[str, Any]], deletes: list[str]) -> int:
        changed = 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            if upserts:
                with cur.copy(f"COPY sim_customers_batch ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for r in upserts:
                        copy.write_row([r[k] if k != "updated_at" else ms_to_datetime(r[k]) for k in COLUMNS])
                cur.execute(_UPSERT)
                changed += cur.rowcount
            if deletes:
                cur.execute("DELETE FROM crm.customers WHERE customer_id = ANY(%s)", (deletes,))
                changed += cur.rowcount
        return changed

    def close(self) -> None:
        self.conn.close()


def run_customers(config: CustomerConfig | None = None, *, settings=None, dsn: str | None = None,
                  **overrides) -> CustomerLedger:
    """Write the population and its change timeline to crm.customers; return the ledger."""
    from simulators.runner import new_run_id, simulator_dir

    cfg = dataclasses.replace(config or CustomerConfig(), **overrides)
    if cfg.mode not in ("backfill", "live"):
        raise ValueError(f"mode must be backfill or live, not {cfg.mode!r}")
    run_id = cfg.run_id or new_run_id("customers")
    cfg = dataclasses.replace(cfg, run_id=run_id)
    if settings is None:
        from platform_common import config as stack_config
        settings = stack_config.load()
    start_ms, end_ms = cfg.window()
    pop = build_population(cfg.seed, cfg.customers, start_ms, end_ms, cfg.id_prefix)
    ledger = CustomerLedger(run_id, cfg.as_dict(), pop)
    changes = timeline(pop)
    by_id = pop.by_id
    writer = CustomerWriter(dsn or settings.postgres_dsn(settings.postgres_simulator_user,
                                                         settings.postgres_simulator_password))
    view = ProgressView("customers", float(len(changes)), cfg.quiet)
    done = 0
    try:
        # one transaction per simulated day (everything before the window in the first one)
        batch_day, upserts, deletes = None, {}, []
        for ch in changes:
            day = max(ch.t_ms, start_ms) // DAY_MS
            if batch_day is not None and day != batch_day:
                ledger.rows_changed += writer.apply(list(upserts.values()), deletes)
                ledger.transactions += 1
                upserts, deletes = {}, []
                view.update(done, f"{ledger.inserts:,} inserts  {sum(ledger.updates.values()):,} updates  "
                                  f"{ledger.deletes:,} deletes  {ms_to_datetime(ch.t_ms):%Y-%m-%d}")
            batch_day = day
            if ch.op == "insert":
                ledger.apply(ch, _row(by_id[ch.customer_id], ch.t_ms))
            else:
                ledger.apply(ch)
            if ch.op == "delete":
                deletes.append(ch.customer_id)
            else:
                upserts[ch.customer_id] = dict(ledger.final[ch.customer_id])
            done += 1
        if upserts or deletes:
            ledger.rows_changed += writer.apply(list(upserts.values()), deletes)
            ledger.transactions += 1
        if cfg.mode == "live":
            _live(cfg, ledger, writer, view)
        view.close(done, f"{ledger.inserts:,} inserts  {sum(ledger.updates.values()):,} updates  "
                         f"{ledger.deletes:,} deletes  {ledger.transactions} transactions")
    finally:
        writer.close()
        ledger.finished_at = dt.datetime.now(dt.UTC)
    if cfg.write_ground_truth:
        pop.write_ground_truth(simulator_dir(settings) / "churn_ground_truth.csv")
    if cfg.ledger != "none":
        ledger.write(cfg.ledger_dir or simulator_dir(settings) / "ledger" / run_id)
    return ledger


def _live(cfg: CustomerConfig, ledger: CustomerLedger, writer: CustomerWriter, view: ProgressView) -> None:
    rng = stream(cfg.seed, "customer-live")
    t0 = time.perf_counter()
    n = 0
    try:
        while (cfg.count is None or n < cfg.count) and (cfg.duration is None or time.perf_counter() - t0 < cfg.duration):
            alive = sorted(ledger.final)
            if not alive:
                break
            cid = alive[rng.randrange(len(alive))]
            row = ledger.final[cid]
            now = int(time.time() * 1000)
            u = rng.random()
            if u < 0.02:
                ch = Change(now, cid, "delete", None, None, None)
            elif u < 0.45:
                i = TIER_ORDER.index(row["subscription_tier"])
                j = min(2, i + 1) if (i == 0 or rng.random() < 0.5) and i < 2 else i - 1
                ch = Change(now, cid, "update", "subscription_tier", row["subscription_tier"], TIER_ORDER[j])
            elif u < 0.95:
                local, domain = row["email"].split("@", 1)
                ch = Change(now, cid, "update", "email", row["email"],
                            f"{local.split('+')[0]}+{rng.randrange(1000, 10000)}@{domain}")
            else:
                new = catalog.COUNTRIES[rng.randrange(len(catalog.COUNTRIES))][0]
                ch = Change(now, cid, "update", "country", row["country"], new)
            ledger.apply(ch)
            if ch.op == "delete":
                ledger.rows_changed += writer.apply([], [cid])
            else:
                ledger.rows_changed += writer.apply([dict(ledger.final[cid])], [])
            ledger.transactions += 1
            n += 1
            view.update(n, f"live: {n:,} changes")
            delay = t0 + n / cfg.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    except KeyboardInterrupt:
        view.print("interrupted")

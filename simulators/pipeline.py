"""Wait until the platform holds exactly what a simulator run sent (`python -m simulators wait-for-pipeline`).

A run's expectations come from its ledger (DATA_DIR/simulator/ledger/<run-id>/summary.json):

* events run: raw.web_events / raw.purchase_events in PostgreSQL (Flink's output) hold the ledger's
  *valid* records (duplicates collapsed, malformed ones in the dead-letter topic), and the ClickHouse
  mirror cdc.raw_* (FINAL, not deleted) holds the same number;
* customers run: crm.customers and cdc.crm_customers hold the ledger's `final_rows`.

A run is scoped by its customer ids (`<id prefix><digits>`, the simulators' id format) and, for
events, by its event-time range, so other producers on the same tables do not count. Raw rows
only ever grow, so more rows than expected is an error at once (another run with the same
customer ids and window), not something to wait out. Without progress for `stall` seconds the
wait stops with one line naming the stage and the Flink job's state.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from platform_common import clients
from platform_common.errors import StackError


class PipelineError(StackError):
    pass


@dataclass
class Check:
    """One count to reach: `source` (PostgreSQL) or `mirror` (ClickHouse) rows of a table in a scope."""
    stage: str            # "stream" (Kafka → Flink → PostgreSQL), "crm" (simulator → PostgreSQL) or "cdc"
    table: str
    expected: int
    sql: str
    params: dict = field(default_factory=dict)
    got: int = -1
    reached_s: float | None = None

    @property
    def done(self) -> bool:
        return self.got == self.expected


def ledger_root(settings) -> Path:
    return settings.data_dir / "simulator" / "ledger"


def read_summary(settings, run: str | Path) -> dict:
    """A run's summary.json: `run` is a run id under the ledger root or a ledger folder."""
    path = Path(run) / "summary.json" if Path(run).is_dir() else ledger_root(settings) / str(run) / "summary.json"
    run_id = str(run)
    if not path.exists():
        raise PipelineError(f"no ledger for run {run_id} ({path} not found); list runs with "
                            f"`ls {ledger_root(settings)}`")
    return json.loads(path.read_text())


def _population(cfg: dict) -> tuple:
    return cfg.get("seed"), cfg.get("customers"), cfg.get("id_prefix"), cfg.get("start"), cfg.get("days")


def default_runs(settings) -> list[str]:
    """The newest events run, plus the newest customers run of the same population (if any); or the
    newest import when it is newer than any events run (an import holds its customers and events)."""
    root = ledger_root(settings)
    runs = sorted((p.parent.name for p in root.glob("*/summary.json")), reverse=True)
    newest = next((r for r in runs if "-events-" in r or "-import-" in r), None)
    if newest is not None and "-import-" in newest:
        return [newest]
    events = next((r for r in runs if "-events-" in r), None)
    if events is None:
        customers = next((r for r in runs if "-customers-" in r), None)
        if customers is None:
            raise PipelineError(f"no simulator run under {root}; run `make generate_all` first")
        return [customers]
    pop = _population(read_summary(settings, events)["config"])
    same = next((r for r in runs if "-customers-" in r and _population(read_summary(settings, r)["config"]) == pop),
                None)
    return [events] + ([same] if same else [])


def _id_pattern(prefix: str) -> str:
    return "^" + re.escape(prefix) + "[0-9]{7,}$"


def _scope(ids: list[str] | None, prefix: str) -> tuple[str, str, dict]:
    """Which customers a run's rows belong to, as (PostgreSQL predicate, ClickHouse predicate, params):
    a simulator run's ids match `<prefix><digits>`; an import lists its (the user's) ids."""
    if ids is not None:
        return "customer_id = ANY(%(ids)s)", "has({ids:Array(String)}, customer_id)", {"ids": ids}
    return "customer_id ~ %(p)s", "match(customer_id, {p:String})", {"p": _id_pattern(prefix)}


def checks_for(summary: dict) -> list[Check]:
    cfg = summary["config"]
    out = []
    if summary["kind"] in ("customers", "import"):
        n = summary["final_rows"] if summary["kind"] == "customers" else summary["customers"]["final_rows"]
        pg, ch, params = _scope(summary["customers"]["ids"] if summary["kind"] == "import" else None,
                                cfg.get("id_prefix", "C"))
        if summary["kind"] == "customers" or n:
            out += [
                Check("crm", "crm.customers", n, f"SELECT count(*) FROM crm.customers WHERE {pg}", params),
                Check("cdc", "cdc.crm_customers", n,
                      f"SELECT count() FROM cdc.crm_customers FINAL WHERE _is_deleted = 0 AND {ch}", params),
            ]
        if summary["kind"] == "customers":
            return out
    rng = summary["event_time_range"]
    lo, hi = rng["min_ms"], rng["max_ms"]
    if lo is None:
        return out
    pg, ch, params = _scope(summary.get("event_customer_ids"), cfg.get("id_prefix", "C"))
    for topic, table, col in (("web_events", "web_events", "event_time"), ("purchase_events", "purchase_events", "order_time")):
        n = summary["topics"][topic]["valid"]
        scope = {**params, "lo": lo, "hi": hi}
        out.append(Check("stream", f"raw.{table}", n,
                         f"SELECT count(*) FROM raw.{table} WHERE {pg} AND {col} >= "
                         f"to_timestamp(%(lo)s / 1000.0) AND {col} <= to_timestamp(%(hi)s / 1000.0)", scope))
        out.append(Check("cdc", f"cdc.raw_{table}", n,
                         f"SELECT count() FROM cdc.raw_{table} FINAL WHERE _is_deleted = 0 AND {ch} "
                         f"AND toUnixTimestamp64Milli({col}) BETWEEN {{lo:Int64}} AND {{hi:Int64}}",
                         scope))
    return out


def _flink_state(settings) -> str:
    try:
        from platform_common import flink_rest
        from platform_common.contracts import FLINK_JOB_NAME
        job = flink_rest.running_job(settings)
        return f"Flink job {FLINK_JOB_NAME}: {job['state'] if job else 'NOT RUNNING (make flink-submit)'}"
    except Exception as exc:  # noqa: BLE001 - only a hint in an error message
        return f"Flink REST unreachable ({exc.__class__.__name__})"


def wait(settings, run_ids: list[str | Path] | None = None, timeout: float = 900, stall: float = 120,
         interval: float = 2.0, progress=print) -> dict:
    """Block until every check of the runs holds (twice, `interval` apart). Returns timings and counts:
    {"runs", "checks": [{table, expected, got, reached_s}], "stream_s", "cdc_s", "seconds"}."""
    import psycopg

    run_ids = run_ids or default_runs(settings)
    checks = [c for r in run_ids for c in checks_for(read_summary(settings, r))]
    ch = clients.clickhouse(settings)
    t0 = last_change = time.monotonic()
    last_print, stable = 0.0, False
    with psycopg.connect(settings.postgres_dsn(settings.postgres_bi_user, settings.postgres_bi_password),
                         autocommit=True) as pg:
        while True:
            now = time.monotonic()
            moved = False
            for c in checks:
                if c.stage == "cdc":
                    got = int(ch.command(c.sql, parameters=c.params))
                else:
                    got = pg.execute(c.sql, c.params).fetchone()[0]
                if got != c.got:
                    moved = True
                c.got = got
                if got > c.expected:
                    raise PipelineError(f"{c.table} holds {got:,} rows of this run's customers and window, more than "
                                        f"the {c.expected:,} the ledger sent: another run sent the same customer ids "
                                        f"and event times (use another --id-prefix or window; an import overlapping "
                                        f"an earlier one in customers and time range cannot be told apart from it)")
                if c.done and c.reached_s is None:
                    c.reached_s = round(now - t0, 1)
                elif not c.done:
                    c.reached_s = None
            if moved:
                last_change = now
            if all(c.done for c in checks):
                if stable:
                    break
                stable = True             # re-read once after `interval`: nothing still in flight
            else:
                stable = False
            if progress and (now - last_print >= 10 or stable):
                progress("  " + ", ".join(f"{c.table} {c.got:,}/{c.expected:,}" for c in checks))
                last_print = now
            behind = [c for c in checks if not c.done]
            if behind and now - last_change > stall:
                first = behind[0]
                raise PipelineError(f"no progress for {stall:.0f}s: {first.table} at {first.got:,} of {first.expected:,} "
                                    f"({first.stage}); {_flink_state(settings)}; see `make status` and `make logs`")
            if behind and now - t0 > timeout:
                raise PipelineError(f"timed out after {timeout:.0f}s: " + ", ".join(
                    f"{c.table} {c.got:,}/{c.expected:,}" for c in behind))
            time.sleep(interval)

    def stage_done(stage):
        times = [c.reached_s for c in checks if c.stage == stage]
        return max(times) if times else None
    return {"runs": [str(r) for r in run_ids], "checks": [{"table": c.table, "expected": c.expected, "got": c.got,
                                         "reached_s": c.reached_s} for c in checks],
            "stream_s": stage_done("stream"), "cdc_s": stage_done("cdc"),
            "seconds": round(time.monotonic() - t0, 1)}

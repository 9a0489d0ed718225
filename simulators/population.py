"""The customer population and its hidden lifecycle (engagement, churn).

A population is a pure function of (seed, number of customers, history window, id prefix):
the customer simulator (master data in Postgres) and the event simulator (Kafka) build the same
one, so events reference exactly the customers that exist in `crm.customers`.

Lifecycle: each customer has a base engagement (sessions per day, log-normal). About a fifth
of them churn inside the window: over the `DECAY_DAYS` before their churn date their activity
falls linearly to 10 %, and from the churn date on they produce no events at all. The churn
dates are the hidden ground truth (`churn_ground_truth.csv`), never written to `crm.customers`.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from simulators import catalog
from simulators.rng import Picker, stream

DAY_MS = 86_400_000
DECAY_DAYS = 28
MIN_ACTIVE_DAYS = 10        # a churner is active at least this long after signup / window start
BASE_CHURN_PROBABILITY = 0.22
CHURN_TIER_FACTOR = {"free": 1.3, "basic": 0.9, "premium": 0.55}


@dataclass(slots=True)
class Customer:
    idx: int
    customer_id: str
    key: bytes                 # Kafka key (customer_id, UTF-8)
    first_name: str
    last_name: str
    email: str
    signup_ms: int
    country: str
    acquisition_channel: str
    subscription_tier: str
    device: str                # primary device
    sessions_per_day: float    # engagement at full activity
    conversion: float          # multiplier on add-to-cart propensity
    churn_ms: int | None       # hidden: no activity from here on
    decay_ms: int | None       # hidden: activity declines from here to churn_ms

    def activity(self, t_ms: int) -> float:
        """Fraction of the base engagement at time t (0 before signup and from churn on)."""
        if t_ms < self.signup_ms:
            return 0.0
        churn = self.churn_ms
        if churn is None:
            return 1.0
        if t_ms >= churn:
            return 0.0
        decay = self.decay_ms
        if t_ms < decay:
            return 1.0
        return 1.0 - 0.9 * (t_ms - decay) / (churn - decay)

    @property
    def signup_date(self) -> dt.date:
        return ms_to_datetime(self.signup_ms).date()


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def default_start(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """History starts `days` before today's midnight (UTC), so a backfill ends at midnight."""
    now = now or dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - dt.timedelta(days=days)


def time_window(start: dt.datetime | None, days: float) -> tuple[int, int]:
    """The simulated history as epoch-ms [start, end); a naive start is taken as UTC."""
    start = start or default_start(int(days))
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    start_ms = int(start.timestamp() * 1000)
    return start_ms, start_ms + int(days * DAY_MS)


@dataclass
class Population:
    seed: int
    start_ms: int
    end_ms: int
    customers: list[Customer]

    @property
    def by_id(self) -> dict[str, Customer]:
        return {c.customer_id: c for c in self.customers}

    def ground_truth_rows(self) -> list[tuple[str, bool, str]]:
        rows = []
        for c in self.customers:
            churned = c.churn_ms is not None and c.churn_ms <= self.end_ms
            rows.append((c.customer_id, churned, ms_to_datetime(c.churn_ms).date().isoformat() if churned else ""))
        return rows

    def write_ground_truth(self, path: Path) -> Path:
        """customer_id, churned (true/false), churn_date (YYYY-MM-DD, empty if not churned)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["customer_id", "churned", "churn_date"])
            for cid, churned, date in self.ground_truth_rows():
                writer.writerow([cid, "true" if churned else "false", date])
        tmp.replace(path)
        return path


def build(seed: int, n_customers: int, start_ms: int, end_ms: int, id_prefix: str = "C") -> Population:
    rng = stream(seed, "population")
    countries, devices = Picker(catalog.COUNTRIES), Picker(catalog.DEVICES)
    channels, tiers = Picker(catalog.ACQUISITION_CHANNELS), Picker(catalog.TIERS)
    window = max(end_ms - start_ms, DAY_MS)
    customers = []
    for idx in range(n_customers):
        cid = f"{id_prefix}{idx + 1:07d}"
        first = catalog.FIRST_NAMES[rng.randrange(len(catalog.FIRST_NAMES))]
        last = catalog.LAST_NAMES[rng.randrange(len(catalog.LAST_NAMES))]
        domain = catalog.EMAIL_DOMAINS[rng.randrange(len(catalog.EMAIL_DOMAINS))]
        email = f"{first}.{last}.{idx + 1}@{domain}"
        if rng.random() < 0.75:  # existing customer: signed up up to two years before the window
            signup = start_ms - int(rng.random() * 730 * DAY_MS)
        else:                    # acquired during the window
            signup = start_ms + int(rng.random() * (window - DAY_MS))
        signup -= signup % 1000
        tier = tiers.pick(rng)
        engagement = min(6.0, rng.lognormvariate(-1.2, 0.9))  # sessions/day; median 0.30, mean ~0.45
        conversion = rng.lognormvariate(0.0, 0.35) * {"free": 0.85, "basic": 1.1, "premium": 1.4}[tier]
        churn = decay = None
        p_churn = BASE_CHURN_PROBABILITY * CHURN_TIER_FACTOR[tier] * (1.4 if engagement < 0.2 else 1.0)
        u = rng.random()
        earliest = max(signup, start_ms) + MIN_ACTIVE_DAYS * DAY_MS
        if u < p_churn and earliest < end_ms:
            churn = earliest + int(rng.random() * (end_ms - earliest))
            churn -= churn % 1000
            decay = max(max(signup, start_ms), churn - DECAY_DAYS * DAY_MS)
        customers.append(Customer(
            idx=idx, customer_id=cid, key=cid.encode(), first_name=first, last_name=last, email=email,
            signup_ms=signup, country=countries.pick(rng), acquisition_channel=channels.pick(rng),
            subscription_tier=tier, device=devices.pick(rng), sessions_per_day=engagement,
            conversion=conversion, churn_ms=churn, decay_ms=decay))
    return Population(seed=seed, start_ms=start_ms, end_ms=end_ms, customers=customers)

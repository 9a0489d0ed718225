"""Running the event simulator: clock (backfill / live), pacing, faults, sinks, ledger files."""
from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import heapq
import math
import os
import time
from pathlib import Path

import orjson

from simulators.events import _WEB, EventConfig, Generator, malformed_record, mean_records_per_session
from simulators.ledger import EventLedger
from simulators.population import Population
from simulators.population import build as build_population
from simulators.progress import ProgressView
from simulators.rng import stream
from simulators.sinks import open_sink

LIVE_WARMUP_MS = 300_000         # live mode: sessions already running when the run starts (no ramp-up) ...
LIVE_WARMUP_SESSIONS = 150_000   # ... but at most this many (high rates ramp up over a few seconds)
LIVE_CATCH_UP_ROUNDS = 5         # ... and the seconds spawning them took are skipped in at most this many steps


def new_run_id(kind: str) -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{kind}-{os.urandom(3).hex()}"


def simulator_dir(settings=None) -> Path:
    if settings is None:
        from platform_common import config
        settings = config.load()
    return settings.data_dir / "simulator"


class _Emitter:
    """Pops records in event-time order and sends them, injecting late/duplicate/malformed records."""

    def __init__(self, cfg: EventConfig, gen: Generator, sink, ledger: EventLedger, view: ProgressView,
                 total_for_progress: float | None):
        self.cfg, self.gen, self.sink, self.ledger, self.view = cfg, gen, sink, ledger, view
        self.faults = stream(cfg.seed, "faults")
        self.late: list[tuple] = []
        self.late_delay_ms = int(cfg.late_delay_s * 1000)
        self.generated = 0
        self.limit = cfg.count if cfg.count is not None else math.inf
        self.sent = 0
        self.stopped = False
        self.rate = cfg.effective_rate
        self.check_every = 1024 if self.rate <= 0 else max(1, min(1024, int(self.rate / 100)))
        self.next_check = self.check_every
        self.t0 = time.perf_counter()
        self.last_view = 0.0
        self.stream_time = 0
        self.total = total_for_progress
        self.progress_by_time = cfg.count is None and cfg.mode == "backfill"

    # -- pacing, progress, duration ------------------------------------------------------------------
    def _tick(self) -> None:
        self.next_check = self.sent + self.check_every
        now = time.perf_counter()
        if self.rate > 0:
            ahead = self.t0 + self.sent / self.rate - now
            if ahead > 0:
                time.sleep(ahead)
                now = time.perf_counter()
        if self.cfg.duration is not None and now - self.t0 >= self.cfg.duration:
            self.stopped = True
        if now - self.last_view >= 0.25:
            self.last_view = now
            self.show(now)

    def show(self, now: float | None = None) -> None:
        now = now or time.perf_counter()
        elapsed = max(now - self.t0, 1e-9)
        lg = self.ledger
        stats = (f"{self.sent:,} sent  {self.sent / elapsed:,.0f}/s  web {lg.web.valid:,}  orders "
                 f"{lg.purchases.valid:,}  dup {lg.web.duplicates + lg.purchases.duplicates:,}  malformed "
                 f"{lg.web.malformed + lg.purchases.malformed:,}  late {lg.web.late + lg.purchases.late:,}")
        if self.cfg.mode == "backfill" and self.stream_time:
            stats += f"  sim {dt.datetime.fromtimestamp(self.stream_time / 1000, dt.UTC):%Y-%m-%d %H:%M}"
        if self.progress_by_time:
            done = self.stream_time - self.cfg.window()[0] if self.stream_time else 0
        elif self.cfg.count is not None:
            done = self.generated
        else:
            done = now - self.t0
        self.view.update(done, stats)

    # -- sending -------------------------------------------------------------------------------------
    def emit_until(self, t_limit: int) -> None:
        """Send every pending record with event time < t_limit (in order)."""
        heap, pop = self.gen.heap, heapq.heappop
        send_web = "web" in self.cfg.streams
        send_orders = "purchases" in self.cfg.streams
        late, late_rate, frandom = self.late, self.cfg.late_rate, self.faults.random
        dup_rate, bad_rate = self.cfg.duplicate_rate, self.cfg.malformed_rate
        faults_on = dup_rate > 0 or bad_rate > 0
        produce, dumps = self.sink.produce, orjson.dumps
        web_topic, order_topic = self.cfg.web_topic, self.cfg.purchase_topic
        lg_web, lg_order = self.ledger.web_event, self.ledger.order
        while heap and heap[0][0] < t_limit:
            t, _seq, kind, rec, key, total, n_items = pop(heap)
            is_web = kind == _WEB
            if not (send_web if is_web else send_orders):
                continue
            self.stream_time = t
            self.generated += 1
            if late_rate and frandom() < late_rate:
                heapq.heappush(late, (t + self.late_delay_ms, _seq, kind, rec, key, total, n_items))
            else:
                value = dumps(rec)
                if is_web:
                    produce(web_topic, key, value)
                    lg_web(rec, 0)
                else:
                    produce(order_topic, key, value)
                    lg_order(rec, total, n_items, 0)
                self.sent += 1
                if faults_on:
                    self._faults(is_web, rec, key, value)
                # held records whose delay has passed go right after a record that far ahead of them
                if late and late[0][0] <= t:
                    self.release_late(t)
                if self.sent >= self.next_check:
                    self._tick()
            if self.generated >= self.limit or self.stopped:
                self.stopped = True
                return

    def _faults(self, is_web: bool, rec: dict, key: bytes, value: bytes) -> None:
        topic = self.cfg.web_topic if is_web else self.cfg.purchase_topic
        frandom = self.faults.random
        if self.cfg.duplicate_rate and frandom() < self.cfg.duplicate_rate:
            self.sink.produce(topic, key, value)
            self.ledger.duplicate(is_web, rec)
            self.sent += 1
        if self.cfg.malformed_rate and frandom() < self.cfg.malformed_rate:
            reason, raw, rid = malformed_record(self.faults, is_web, rec)
            self.sink.produce(topic, key, raw)
            self.ledger.malformed(is_web, reason, rec["customer_id"], rid)
            self.sent += 1

    def release_late(self, stream_time: int, everything: bool = False) -> None:
        late = self.late
        while late and (everything or late[0][0] <= stream_time):
            release, _seq, kind, rec, key, total, n_items = heapq.heappop(late)
            is_web = kind == _WEB
            value = orjson.dumps(rec)
            event_time = rec["event_time"] if is_web else rec["order_time"]
            delay = max(1, stream_time - event_time)   # how far behind the stream it arrives
            if is_web:
                self.sink.produce(self.cfg.web_topic, key, value)
                self.ledger.web_event(rec, delay)
            else:
                self.sink.produce(self.cfg.purchase_topic, key, value)
                self.ledger.order(rec, total, n_items, delay)
            self.sent += 1
            if self.cfg.duplicate_rate or self.cfg.malformed_rate:
                self._faults(is_web, rec, key, value)


def run(config: EventConfig | None = None, *, sink=None, population: Population | None = None, settings=None,
        **overrides) -> EventLedger:
    """Run the event simulator in-process and return its ledger.

    `sink`: None = Kafka at KAFKA_BOOTSTRAP_SERVERS (from .env), "memory" (a MemorySink, kept on
    the ledger as `ledger.sink`), "null", or any object with produce(topic, key, value) and flush().
    Keyword overrides set EventConfig fields, e.g. run(count=1000, sink="memory", quiet=True).
    """
    cfg = dataclasses.replace(config or EventConfig(), **overrides)
    cfg.validate()
    start_ms, end_ms = cfg.window()
    run_id = cfg.run_id or new_run_id("events")
    cfg = dataclasses.replace(cfg, run_id=run_id)
    pop = population or build_population(cfg.seed, cfg.customers, start_ms, end_ms, cfg.id_prefix)
    need_settings = sink is None or (cfg.ledger != "none" and cfg.ledger_dir is None) or cfg.write_ground_truth
    if need_settings and settings is None:
        from platform_common import config as stack_config
        settings = stack_config.load()
    sink = open_sink(sink, settings,
                     [t for s, t in (("web", cfg.web_topic), ("purchases", cfg.purchase_topic)) if s in cfg.streams])

    ledger = EventLedger(run_id, cfg.as_dict(), cfg.web_topic, cfg.purchase_topic, detail=cfg.ledger == "full")
    ledger.sink = sink
    ledger.population = pop
    if cfg.count is not None:
        total = float(cfg.count)
    elif cfg.mode == "backfill":
        total = float(end_ms - start_ms)
    else:
        total = cfg.duration
    view = ProgressView(f"{cfg.mode} {'+'.join(cfg.streams)}", total, cfg.quiet)
    gen = Generator(pop, cfg.seed, cfg.id_prefix)
    em = _Emitter(cfg, gen, sink, ledger, view, total)
    # The records, heaps and ledger hold millions of small containers but no reference cycles:
    # the cyclic GC would only re-scan them over and over (it costs ~40% of the throughput).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            _drive(cfg, gen, em, pop, start_ms, end_ms)
        except KeyboardInterrupt:
            view.print("interrupted: sending what is pending and writing the ledger")
        em.release_late(em.stream_time, everything=True)
        sink.flush()
    finally:
        if gc_was_enabled:
            gc.enable()
        ledger.elapsed_s = time.perf_counter() - em.t0
        ledger.finished_at = dt.datetime.now(dt.UTC)
        em.show()
        view.close()
    if cfg.write_ground_truth:
        pop.write_ground_truth(simulator_dir(settings) / "churn_ground_truth.csv")
    if cfg.ledger != "none":
        directory = cfg.ledger_dir or simulator_dir(settings) / "ledger" / run_id
        ledger.write(directory)
        pop.write_ground_truth(directory / "churn_ground_truth.csv")
        ledger.directory = directory
    return ledger


def _drive(cfg: EventConfig, gen: Generator, em: _Emitter, pop: Population, start_ms: int, end_ms: int) -> None:
    if cfg.mode == "backfill":
        # the simulated clock advances one minute at a time; records of sessions running past the
        # end of the window are not sent (the history ends at end_ms)
        t = start_ms
        while t < end_ms and not em.stopped:
            t1 = min(t + 60_000, end_ms)
            gen.spawn_backfill(t, t1)
            em.emit_until(t1)
            t = t1
        em.stream_time = max(em.stream_time, t)
        return
    per_session = mean_records_per_session(pop, cfg.seed, cfg.streams)
    sessions_per_ms = cfg.effective_rate / per_session / 1000
    now = int(time.time() * 1000)
    warmup = int(min(LIVE_WARMUP_MS, LIVE_WARMUP_SESSIONS / sessions_per_ms))
    gen.drop_before = now                                        # sessions already in progress,
    gen.spawn_live(now - warmup, now, sessions_per_ms)           # without their past: no ramp-up
    # spawning up to LIVE_WARMUP_SESSIONS takes seconds: what the sessions did meanwhile is their
    # past too, else it goes out seconds behind its event time (the streaming bench measured that lag).
    # Each catch-up spawns the time the previous one took, so a few of them close the gap.
    started = now
    for _ in range(LIVE_CATCH_UP_ROUNDS):
        now = int(time.time() * 1000)
        if now - started <= 1:
            break
        gen.drop_before = now
        gen.spawn_live(started, now, sessions_per_ms)
        started = now
    while gen.heap and gen.heap[0][0] < started:
        heapq.heappop(gen.heap)
    gen.drop_before = 0
    now = started
    em.t0 = time.perf_counter()
    last = now
    while not em.stopped:
        now = int(time.time() * 1000)
        if now > last:
            gen.spawn_live(last, now, sessions_per_ms)
            last = now
        em.emit_until(now + 1)
        if em.late and em.late[0][0] <= now:
            em.release_late(now)
        if cfg.duration is not None and time.perf_counter() - em.t0 >= cfg.duration:
            break
        if not gen.heap or gen.heap[0][0] > now:
            time.sleep(0.005)
    em.stream_time = max(em.stream_time, int(time.time() * 1000))

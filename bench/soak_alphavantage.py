"""Soak: the whole AlphaVantage cadence matrix against the simulator, with faults, on a compressed clock.

``python bench/soak_alphavantage.py --hours 24 --speed 60`` plays 24 simulated hours in 24 wall
minutes through the production pieces:

    StreamScheduler (shipped cadence matrix, config/alpha_vantage.yaml)
      → RateLimiter (Redis Lua token buckets) → AlphaVantageClient (httpx, retries)
      → AlphaVantage simulator (child process, fault injection, per-key quota)
      → normalize() → codec round trip (the bytes of the topic) → the stores → Redis Stack

Clock. The scheduler, the client's retry sleeps and budget, and the simulator all read one
compressed clock: ``ScaledClock(start, speed)`` here, and in the simulator process the same
function of the machine's monotonic clock (same start, speed and anchor), so its per-minute
quota is enforced in simulated minutes. The rate limiter reads Redis' own clock, so its
rates are multiplied by ``speed`` (8 requests per simulated second = 8 × speed per second).

Broker. The records go through the codec (``encode_record`` → ``decode_record``: the exact
bytes the ``quotes``/``ticks``/``reference`` topics carry) and then to the same store calls
the store role makes, without Faust and the broker in between. The soak is about quotas,
faults, the normalizer and the stores; an in-memory Tansu hop adds latency and a third busy
process on a 2-core machine but no check (tests/integration/test_ingest_av.py covers the
broker path end to end), and it would let the broker's buffering hide a lost sample.

Processes. The simulator runs in a child process of this script (this script started with
``--simulator``) so that chain pricing gets a core of its own; Redis Stack is the embedded
one (``quanticity.runtime``). Both are stopped on exit, signals included, and die with this
process (``PR_SET_PDEATHSIG``).

Report: calls per function, peak requests per simulated minute (never above the quota),
throttle events, errors by class, samples written vs expected from the successful replies,
a read-back of sampled samples, freshness misses per bucket, archive files exported and
verified. The exit code is 1 when an invariant fails: a quota breach, an unexpected
exception ("crash"), a lost or refused sample, a normalizer bug, or an archive that does
not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis

from bench.common import ROOT, embedded_runtime
from quanticity.agents.ingest_av import TOPIC_OF, DeltaFilter
from quanticity.data_ingestion.alphavantage_rest import AlphaVantageClient
from quanticity.data_ingestion.av_metrics import AlphaVantageMetrics
from quanticity.data_ingestion.clock import ScaledClock
from quanticity.data_ingestion.errors import AlphaVantageError
from quanticity.data_ingestion.normalizer import NormalizeContext, normalize
from quanticity.data_ingestion.rate_limiter import Bucket, RateLimiter, RateLimits
from quanticity.data_ingestion.stream_scheduler import Call, Plan, StreamScheduler, build_plan
from quanticity.errors import RecordDecodeError
from quanticity.observability.metrics import Metrics
from quanticity.runtime.process import free_loopback_port
from quanticity.schemas import (
    Bar,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    Record,
    UnderlyingQuote,
)
from quanticity.schemas.codec import decode_record, encode_record
from quanticity.settings import load_settings
from quanticity.simulation.alphavantage import STATE, FaultRule, SimulatorConfig, serve
from quanticity.simulation.alphavantage.reference_data import MACRO_FUNCTIONS
from quanticity.simulation.market import SimulatedMarket
from quanticity.storage import archive
from quanticity.storage import reference_store as refs
from quanticity.storage.ingestion_index import IngestionIndex, freshness_of
from quanticity.storage.option_store import OptionChainStore, days_to_expiry, event_ms, option_key
from quanticity.storage.quote_store import UnderlyingQuoteStore, quote_samples
from quanticity.storage.redis_timeseries import MaddResult, SeriesSpec, TimeSeriesWriter
from quanticity.topology.registry import TopicRegistry

#: A Monday, 09:00 New York: a whole trading day, the night backfills and the next morning.
DEFAULT_START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
API_KEY = "SOAKKEY123"  # the simulator's only key (any string works for a local simulator)
_RESERVOIR = 4000  # samples read back from Redis at the end
_DRAIN_WALL_S = 30.0  # how long calls in flight may take to finish once the run is over


# --------------------------------------------------------------------------- faults
def soak_faults(scale: float = 1.0) -> dict[str, tuple[FaultRule, ...]]:
    """Every fault kind the simulator has, at rates a day of the matrix meets many times.

    ``scale`` multiplies the probabilities (the fast test turns them up).
    """

    def p(value: float) -> float:
        return min(value * scale, 1.0)

    return {
        "*": (
            FaultRule("throttle", probability=p(0.01)),
            FaultRule("http_503", probability=p(0.004)),
            FaultRule("html_body", probability=p(0.003)),
            FaultRule("empty_object", probability=p(0.002)),
            FaultRule("truncated_body", probability=p(0.003)),
            FaultRule("slow_response", probability=p(0.002), seconds=0.2),  # wall seconds
            FaultRule("premium_only", probability=p(0.0005)),
        ),
        "REALTIME_OPTIONS": (
            FaultRule("empty_chain", probability=p(0.01)),
            FaultRule("junk_greeks", probability=p(0.1), fraction=0.1),
        ),
        "HISTORICAL_OPTIONS": (FaultRule("junk_greeks", probability=p(0.2), fraction=0.1),),
        **{name: (FaultRule("macro_dots", probability=p(0.2), fraction=0.1),) for name in MACRO_FUNCTIONS},
    }


# --------------------------------------------------------------------------- the simulator child
def _die_with_parent() -> None:  # runs in the forked child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _simulator_main(args: argparse.Namespace) -> None:
    """The ``--simulator`` process: serve until SIGTERM, then write the simulator's counters."""
    start = datetime.fromisoformat(args.start)
    anchor: list[float] = []  # set once the parent has started its clock

    def now() -> datetime:
        elapsed = (time.monotonic() - anchor[0]) * args.speed if anchor else 0.0
        return start + timedelta(seconds=elapsed)

    symbols = args.symbols.split(",")
    market = SimulatedMarket(args.seed, start, symbols)
    faults = soak_faults(args.fault_scale) if args.fault_scale > 0 else {}
    config = SimulatorConfig.single_key(API_KEY, per_minute=args.quota, seed=args.seed, faults=faults)
    runner = await serve("127.0.0.1", args.port, config, market, now)
    state = runner.app[STATE]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    anchor_file = Path(args.anchor_file)
    try:
        while not stop.is_set():
            if not anchor and anchor_file.exists():
                anchor.append(float(anchor_file.read_text()))
                anchor_file.with_suffix(".ok").write_text("ok")
            if anchor:
                # Throttle replies alternate between AlphaVantage's two spellings (reference §8).
                turn = int((now() - start).total_seconds() // args.throttle_flip_s)
                state.config = replace(config, throttle_key="Information" if turn % 2 == 0 else "Note")
            if os.getppid() == 1:  # the soak died without stopping us
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await stop.wait()
    finally:
        stats = {
            "quota": {key: asdict(value) for key, value in state.quota.stats().items()},
            "faults": state.faults.fired,
            "calls": state.calls,
            "simulated_until": now().isoformat(),
        }
        Path(args.stats_file).write_text(json.dumps(stats, indent=1))
        await runner.cleanup()


class SimulatorProcess:
    """The simulator child: started, anchored to our clock, stopped, its counters read."""

    def __init__(self, options: SoakOptions, home: Path, symbols: Sequence[str]) -> None:
        self.port = free_loopback_port()
        self.anchor_file = home / "anchor"
        self.stats_file = home / "simulator-stats.json"
        self.log_path = home / "simulator.log"
        self.argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--simulator",
            f"--port={self.port}",
            f"--start={options.start.isoformat()}",
            f"--speed={options.speed}",
            f"--seed={options.seed}",
            f"--quota={options.quota}",
            f"--fault-scale={options.fault_scale}",
            f"--throttle-flip-s={options.throttle_flip_s}",
            f"--symbols={','.join(symbols)}",
            f"--anchor-file={self.anchor_file}",
            f"--stats-file={self.stats_file}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/query"

    async def start(self, timeout_s: float = 120.0) -> None:
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
            )
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"AlphaVantage simulator did not start: see {self.log_path}")
            await asyncio.sleep(0.1)

    async def anchor(self, monotonic_anchor: float, timeout_s: float = 10.0) -> None:
        """Hand the clock's anchor to the simulator and wait until it runs on it."""
        self.anchor_file.write_text(repr(monotonic_anchor))
        deadline = time.monotonic() + timeout_s
        while not self.anchor_file.with_suffix(".ok").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not pick up the clock anchor")
            await asyncio.sleep(0.005)

    def stop(self) -> dict[str, Any]:
        """SIGTERM, wait, SIGKILL if need be; the simulator's counters (empty if it wrote none)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.stats_file.exists():
            stats: dict[str, Any] = json.loads(self.stats_file.read_text())
            return stats
        return {}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- accounting
@dataclass
class Ledger:
    """Everything the report counts."""

    calls: Counter[str] = field(default_factory=Counter)  # logical calls by function
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (function, outcome)
    requests: list[float] = field(default_factory=list)  # simulated time (s) of each request sent
    errors: Counter[str] = field(default_factory=Counter)  # class (or decode reason) → count
    crashes: list[str] = field(default_factory=list)
    rows_unaccounted: int = 0  # rows neither out nor rejected (must stay 0)
    row_rejections: Counter[str] = field(default_factory=Counter)
    row_flags: int = 0
    samples_expected: Counter[str] = field(default_factory=Counter)  # by family
    samples_written: Counter[str] = field(default_factory=Counter)  # acknowledged, or unchanged and not resent
    samples_unchanged: Counter[str] = field(default_factory=Counter)
    samples_refused: list[tuple[str, str]] = field(default_factory=list)
    documents: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    last_success: dict[tuple[str, str], float] = field(default_factory=dict)  # (bucket, job) → sim s
    freshness_misses: Counter[str] = field(default_factory=Counter)
    missed_runs: Counter[str] = field(default_factory=Counter)
    max_backlog: int = 0
    abandoned: int = 0
    restamped_chains: int = 0  # chains stored again at an event time already stored (after the close)
    reservoir: dict[tuple[str, int], float] = field(default_factory=dict)
    reservoir_seen: int = 0

    def sample(self, rng: random.Random, samples: Sequence[tuple[str, int, float]]) -> None:
        """Keep a uniform sample of written (key, ts, value) for the read-back; later writes of a kept pair win."""
        for key, ts, value in samples:
            if (key, ts) in self.reservoir:
                self.reservoir[(key, ts)] = value
                continue
            self.reservoir_seen += 1
            if len(self.reservoir) < _RESERVOIR:
                self.reservoir[(key, ts)] = value
            elif rng.random() < _RESERVOIR / self.reservoir_seen:
                self.reservoir.pop(rng.choice(list(self.reservoir)))
                self.reservoir[(key, ts)] = value


class RecordingLimiter:
    """The production limiter, recording when (in simulated time) each request was let through."""

    def __init__(self, limiter: RateLimiter, sim_seconds: Callable[[], float], ledger: Ledger) -> None:
        self.limiter = limiter
        self.sim_seconds = sim_seconds
        self.ledger = ledger

    async def acquire(self, function: str) -> float:
        waited = await self.limiter.acquire(function)
        self.ledger.requests.append(self.sim_seconds())
        return waited


def peak_per_window(times: Sequence[float], window_s: float = 60.0) -> int:
    """The most events within any ``window_s`` of each other (a sliding window, both ends included)."""
    ordered = sorted(times)
    peak, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] < t - window_s:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


# --------------------------------------------------------------------------- the pipeline
def _chain_expected(chain: OptionChainSnapshot, max_dte: int) -> int:
    """``chain_samples``' count by its rule, without keys: a mark where a mid or a last exists, an iv where given."""
    if days_to_expiry(chain) > max_dte:
        return 0
    count = 0
    columns = (chain.bid.tolist(), chain.ask.tolist(), chain.last.tolist(), chain.implied_vol.tolist())
    for bid, ask, last, iv in zip(*columns, strict=True):
        quoted = ask >= bid > 0  # false when either is NaN (absent)
        count += (quoted or not math.isnan(last)) + (not math.isnan(iv))
    return count


class SoakPipeline:
    """One scheduled call end to end: client → normalizer → codec → stores, with the accounting."""

    def __init__(
        self,
        client: AlphaVantageClient,
        writer: TimeSeriesWriter,
        clock: ScaledClock,
        start: datetime,
        ledger: Ledger,
        run_id: str,
        seed: int,
    ) -> None:
        self.client = client
        self.clock = clock
        self.start = start
        self.ledger = ledger
        self.run_id = run_id
        self.delta = DeltaFilter()
        self.quotes = UnderlyingQuoteStore(writer)
        self.options = OptionChainStore(writer)
        self.reference = refs.ReferenceStore(writer)
        self.index = IngestionIndex(writer.redis, writer.key_prefix)
        self.models = {topic: TopicRegistry().spec(topic).models for topic in set(TOPIC_OF.values())}
        self.rng = random.Random(seed)  # noqa: S311 - sampling, not cryptography
        self.stopped = asyncio.Event()
        # (symbol, expiry, ts) → read-back samples of that chain: (key, strike, right, field)
        self._watched: dict[tuple[str, str, int], list[tuple[str, float, str, str]]] = {}

    def sim_seconds(self) -> float:
        return (self.clock.now() - self.start).total_seconds()

    async def execute(self, call: Call) -> None:
        """The scheduler's ``execute``: never raises; an unexpected exception is recorded as a crash.

        Once the run is over, calls still waiting for a slot are dropped (counted as abandoned).
        """
        if self.stopped.is_set():
            self.ledger.abandoned += 1
            return
        try:
            await self._execute(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the soak counts crashes instead of dying on them
            self.ledger.crashes.append(f"{call.bucket} {call.function} {call.symbol}: {type(exc).__name__}: {exc}")

    async def _execute(self, call: Call) -> None:
        ledger = self.ledger
        params = dict(call.params)
        ident = call.symbol or params.get("maturity") or call.function
        ledger.calls[call.function] += 1
        try:
            reply = await self.client.call(call.function, **params)
        except AlphaVantageError as exc:
            ledger.errors[type(exc).__name__] += 1
            ledger.outcomes[(call.function, type(exc).__name__)] += 1
            return
        if reply.is_empty:
            ledger.outcomes[(call.function, "empty")] += 1
            return
        context = NormalizeContext(run_id=self.run_id, mode="sim", ingest_time=self.clock.now())
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                None, lambda: normalize(call.function, params, reply.body, context=context)
            )
        except RecordDecodeError as error:
            ledger.errors[f"dead_letter:{error.reason}"] += 1  # the agent routes these to the dead-letter topic
            ledger.outcomes[(call.function, f"dead_letter:{error.reason}")] += 1
            if error.reason == "normalizer_bug":
                ledger.crashes.append(f"normalizer bug on {call.function} {ident}: {error.detail}")
            return
        ledger.outcomes[(call.function, "ok")] += 1
        ledger.rows_unaccounted += result.rows_in - result.rows_out - len(result.rejected_rows)
        ledger.row_rejections.update(rejected.reason for rejected in result.rejected_rows)
        ledger.row_flags += len(result.row_flags)
        for record in self._new_only(result.records):
            topic = TOPIC_OF[type(record)]
            wire = encode_record(record)  # the bytes the topic would carry
            await self._store(decode_record(topic, wire, self.models[topic]))
        ledger.last_success[(call.bucket, ident)] = self.sim_seconds()

    def _new_only(self, records: list[Record]) -> list[Record]:
        """What the ingest agent publishes: new bars and indicator points only (``AlphaVantageIngest``)."""
        kept: list[Record] = list(self.delta.bars([r for r in records if isinstance(r, Bar)]))
        for record in records:
            if isinstance(record, IndicatorSeries):
                trimmed = self.delta.indicator(record)
                if trimmed is not None:
                    kept.append(trimmed)
            elif not isinstance(record, Bar):
                kept.append(record)
        return kept

    async def _store(self, record: Record) -> None:
        """The store role's handler for the record's type (``agents/store.py``), and the accounting."""
        ledger = self.ledger
        ledger.records[record.type] += 1
        if isinstance(record, OptionChainSnapshot):
            result = await self.options.store([record])
            self._count("options", _chain_expected(record, self.options.series_max_dte), result)
            self._sample_chain(record)
            expiry = record.expiry.isoformat()
            await self.index.record(
                record.symbol,
                f"options:{expiry}",
                keys=f"options:{record.symbol}:{expiry}:*",
                event_time=record.event_time,
                source=record.source,
                freshness=freshness_of(record.flags),
            )
            ledger.documents["chains"] += 1
        elif isinstance(record, UnderlyingQuote):
            samples = quote_samples(record)
            self._count("underlyings", len(samples), await self.quotes.store([record]))
            ledger.sample(self.rng, samples)
        elif isinstance(record, Bar):
            await self._series("bars", *refs.bar_samples([record]))
        elif isinstance(record, IndicatorSeries):
            await self._series("indicators", *refs.indicator_samples(record))
            if record.timestamps:
                await self.index.record(
                    record.symbol,
                    f"indicator:{record.function}",
                    keys=f"indicators:{record.symbol}:{record.function}:*",
                    event_time=record.timestamps[-1],
                    source=record.source,
                    freshness="fresh",
                )
        elif isinstance(record, MacroSeries):
            await self._series("macro", *refs.macro_samples(record))
        elif isinstance(record, NewsItem):
            await self.reference.store_news([record])
            ledger.documents["news"] += 1

    async def _series(self, family: str, specs: list[SeriesSpec], samples: list[tuple[str, int, float]]) -> None:
        self._count(family, len(samples), await self.reference.store_series(specs, samples, family))
        self.ledger.sample(self.rng, samples)

    def _count(self, family: str, expected: int, result: MaddResult) -> None:
        """Samples expected from the record vs acknowledged by Redis (or already there: ``unchanged``)."""
        self.ledger.samples_expected[family] += expected
        self.ledger.samples_written[family] += result.written + result.unchanged
        self.ledger.samples_unchanged[family] += result.unchanged
        self.ledger.samples_refused.extend(result.rejected)

    def _sample_chain(self, chain: OptionChainSnapshot) -> None:
        """A few of the chain's samples, keyed by the reference key scheme, for the read-back.

        A later chain with the same event time (after the close, every poll is stamped with
        the close) rewrites those samples: the kept values follow it, as Redis does.
        """
        if days_to_expiry(chain) > self.options.series_max_dte or chain.rows == 0:
            return
        ts = event_ms(chain)
        ident = (chain.symbol, chain.expiry.isoformat(), ts)
        if ident in self._watched:
            self.ledger.restamped_chains += 1
        watched = self._watched.setdefault(ident, [])
        if watched:
            pairs = zip(chain.strike.tolist(), chain.right, strict=True)
            rows = {(strike, right): i for i, (strike, right) in enumerate(pairs)}
            for key, strike, right, field_name in watched:
                row = rows.get((strike, right))
                value = None if row is None else _reference_value(chain, row, field_name)
                if value is not None and (key, ts) in self.ledger.reservoir:
                    self.ledger.reservoir[(key, ts)] = value
        picked = []
        for row in self.rng.sample(range(chain.rows), min(3, chain.rows)):
            strike = float(chain.strike[row])
            for field_name in ("mark", "iv"):
                value = _reference_value(chain, row, field_name)
                if value is not None:
                    key = option_key(chain.symbol, ident[1], strike, chain.right[row], field_name)
                    picked.append((key, ts, value))
                    watched.append((key, strike, chain.right[row], field_name))
        self.ledger.sample(self.rng, picked)


def _reference_value(chain: OptionChainSnapshot, row: int, field_name: str) -> float | None:
    """``chain_samples``' value of one row: the mark (mid when both sides are quoted, else last) or the iv."""
    if field_name == "iv":
        value = float(chain.implied_vol[row])
    else:
        bid, ask, last = float(chain.bid[row]), float(chain.ask[row]), float(chain.last[row])
        value = (bid + ask) / 2.0 if ask >= bid > 0 else last  # NaN (absent) fails the comparison
    return None if math.isnan(value) else value


# --------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class SoakOptions:
    """What to run."""

    hours: float = 24.0
    speed: float = 60.0
    start: datetime = DEFAULT_START
    seed: int = 11
    quota: int = 600
    fault_scale: float = 1.0  # 0 = no faults
    throttle_flip_s: float = 600.0  # simulated seconds between Information and Note throttle texts
    home: Path | None = None


@dataclass
class SoakReport:
    """The soak's findings; ``failures`` lists the invariants that did not hold."""

    options: dict[str, Any]
    wall_s: float
    simulated_s: float
    planned_calls_per_min: float
    calls: dict[str, int]
    outcomes: dict[str, dict[str, int]]
    requests: int
    peak_requests_per_min: int
    quota: int
    ceiling: int
    simulator: dict[str, Any]
    throttle_events: dict[str, float]
    errors: dict[str, int]
    row_rejections: dict[str, int]
    row_flags: int
    rows_unaccounted: int
    samples_expected: dict[str, int]
    samples_written: dict[str, int]
    samples_unchanged: dict[str, int]
    samples_refused: int
    readback_checked: int
    readback_mismatches: list[str]
    documents: dict[str, int]
    records: dict[str, int]
    restamped_chains: int
    freshness_misses: dict[str, int]
    missed_runs: dict[str, int]
    max_backlog: int
    dispatched: int
    abandoned_at_end: int
    archive_files: int
    archive_rows: int
    archive_problems: list[str]
    crashes: list[str]
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def invariants(report: SoakReport) -> list[str]:
    """The invariants that fail (empty when the soak passed)."""
    failures = []
    quota_throttles = sum(
        stats.get("rejected", {}).get("per_minute", 0) for stats in report.simulator.get("quota", {}).values()
    )
    if report.peak_requests_per_min > report.quota or quota_throttles:
        failures.append(
            f"quota breach: peak {report.peak_requests_per_min} requests/min (quota {report.quota}), "
            f"{quota_throttles} requests throttled by the quota"
        )
    if report.crashes:
        failures.append(f"{len(report.crashes)} crashes, first: {report.crashes[0]}")
    if report.samples_written != report.samples_expected or report.samples_refused:
        failures.append(
            f"lost samples: expected {report.samples_expected}, written {report.samples_written}, "
            f"refused {report.samples_refused}"
        )
    if report.rows_unaccounted:
        failures.append(f"{report.rows_unaccounted} rows neither normalized nor rejected")
    if report.readback_mismatches:
        failures.append(f"{len(report.readback_mismatches)} samples not read back: {report.readback_mismatches[:3]}")
    if not report.readback_checked or not sum(report.samples_written.values()):
        failures.append("nothing was written: the soak proved nothing")
    if report.archive_problems or not report.archive_files:
        failures.append(f"archive: {report.archive_files} files, problems {report.archive_problems[:3]}")
    return failures


async def _freshness(plan: Plan, pipeline: SoakPipeline, scheduler: StreamScheduler, stop: asyncio.Event) -> None:
    """Each simulated minute: jobs without fresh data for two of their intervals, and the backlog."""
    ledger = pipeline.ledger
    jobs = [job for job in plan.jobs if job.settings.window != "night"]
    while not stop.is_set():
        await pipeline.clock.sleep(60.0)
        now = pipeline.sim_seconds()
        ledger.max_backlog = max(ledger.max_backlog, scheduler.backlog)
        for job in jobs:
            ident = job.symbol or dict(job.base_params).get("tickers") or dict(job.base_params).get("maturity")
            ident = ident or dict(job.base_params).get("function", job.settings.function)
            last = ledger.last_success.get((job.bucket, ident), job.offset_s)
            if now - last > 2 * job.settings.every_s + 60.0:
                ledger.freshness_misses[job.bucket] += 1


async def _read_back(redis: Redis, prefix: str, reservoir: dict[tuple[str, int], float]) -> list[str]:
    """The sampled (key, ts) pairs whose stored value is not the one written."""
    items = list(reservoir.items())
    mismatches = []
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for (key, ts), _ in chunk:
                pipe.execute_command("TS.RANGE", prefix + key, ts, ts)
            replies = await pipe.execute(raise_on_error=False)
        for ((key, ts), value), reply in zip(chunk, replies, strict=True):
            if isinstance(reply, Exception) or len(reply) != 1 or float(reply[0][1]) != value:
                mismatches.append(f"{key}@{ts}: wrote {value!r}, read {reply!r}"[:200])
    return mismatches


async def run(options: SoakOptions, out: Callable[[str], None] = print) -> SoakReport:
    """Run the soak and return its report (``report.failures`` empty when every invariant held)."""
    settings = load_settings(ROOT / "config", env_file=None)
    cadence = settings.alphavantage.cadence
    plan = build_plan(cadence, settings.watchlists)
    symbols = sorted({s for names in settings.watchlists.values() for s in names})
    wall_started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-av-") as tmp:
        home = options.home or Path(tmp)
        runtime = embedded_runtime(home / "embedded", with_broker=False)
        simulator = SimulatorProcess(options, home, symbols)
        redis: Redis | None = None
        simulator_stats: dict[str, Any] = {}
        try:
            await runtime.start(watch=False)
            await simulator.start()
            redis = Redis.from_url(runtime.redis_url)
            report = await _soak(options, plan, redis, simulator, home, out)
        finally:
            simulator_stats = simulator.stop()
            if redis is not None:
                await redis.aclose()
            runtime.stop_processes()
        report.simulator = simulator_stats
        report.wall_s = time.monotonic() - wall_started
        report.failures = invariants(report)
        return report


async def _soak(
    options: SoakOptions, plan: Plan, redis: Redis, simulator: SimulatorProcess, home: Path, out: Callable[[str], None]
) -> SoakReport:
    cadence = plan.cadence
    prefix = "soak:"
    registry = CollectorRegistry()
    av_metrics = AlphaVantageMetrics(registry)
    metrics = Metrics()
    ledger = Ledger()
    speed = options.speed
    # Redis' clock refills the buckets: per simulated second is per 1/speed real second.
    limits = RateLimits(
        global_bucket=Bucket(cadence.ceiling_calls_per_min / 60.0 * speed, cadence.ceiling_calls_per_min / 60.0),
        function_default=Bucket(cadence.per_function_qps * speed, cadence.per_function_qps),
    )
    limiter = RateLimiter(redis, av_metrics, limits, key_prefix=prefix)
    clock = ScaledClock(options.start, speed)
    loop = asyncio.get_running_loop()
    await simulator.anchor(loop.time() - (clock.now() - options.start).total_seconds() / speed)
    pipeline_clock_s = lambda: (clock.now() - options.start).total_seconds()  # noqa: E731 - a one-line clock
    client = AlphaVantageClient(
        SecretStr(API_KEY),
        RecordingLimiter(limiter, pipeline_clock_s, ledger),
        av_metrics,
        base_url=simulator.base_url,
        sleep=clock.sleep,  # retry backoff in simulated seconds
        clock=pipeline_clock_s,  # retry budget in simulated seconds
    )
    writer = TimeSeriesWriter(redis, metrics, prefix)
    pipeline = SoakPipeline(client, writer, clock, options.start, ledger, "soak", options.seed)
    scheduler = StreamScheduler(
        plan,
        pipeline.execute,
        clock,
        on_missed=lambda bucket, n: ledger.missed_runs.update({bucket: n}),
        market_hours=False,  # the simulated market trades at any hour (sim mode)
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    out(
        f"soak: {options.hours:g} simulated hours at speed {speed:g} from {options.start.isoformat()}, "
        f"{plan.total_calls_per_minute():.1f} calls/min planned over {len(plan.jobs)} jobs; "
        f"simulator {simulator.base_url} (pid {simulator.proc.pid if simulator.proc else '?'})"
    )
    runner = asyncio.ensure_future(scheduler.run(stop))
    watcher = asyncio.ensure_future(_freshness(plan, pipeline, scheduler, stop))
    progress = asyncio.ensure_future(_progress(pipeline, scheduler, stop, out))
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(options.hours * 3600.0 / speed):
                await stop.wait()
        simulated = pipeline.sim_seconds()
        pipeline.stopped.set()  # queued calls return at once; calls in flight finish
        stop.set()
        done, _ = await asyncio.wait({runner}, timeout=_DRAIN_WALL_S)
        if not done:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            ledger.crashes.append(f"calls in flight did not finish within {_DRAIN_WALL_S:.0f} s of the end")
        else:
            runner.result()
    finally:
        for task in (watcher, progress):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client.aclose()
    mismatches = await _read_back(redis, prefix, ledger.reservoir)
    files, rows, problems = await _archive(
        redis, prefix, options.start, options.start + timedelta(seconds=simulated), home
    )
    throttles: dict[str, float] = {}
    for metric in registry.collect():
        if metric.name == "alphavantage_throttle_events":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    throttles[sample.labels.get("function", "?")] = sample.value
    outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    for (function, outcome), count in sorted(ledger.outcomes.items()):
        outcomes[function][outcome] = count
    return SoakReport(
        options={k: str(v) for k, v in asdict(options).items()},
        wall_s=0.0,
        simulated_s=simulated,
        planned_calls_per_min=round(plan.total_calls_per_minute(), 2),
        calls=dict(sorted(ledger.calls.items())),
        outcomes=dict(outcomes),
        requests=len(ledger.requests),
        peak_requests_per_min=peak_per_window(ledger.requests),
        quota=options.quota,
        ceiling=cadence.ceiling_calls_per_min,
        simulator={},
        throttle_events=throttles,
        errors=dict(ledger.errors.most_common()),
        row_rejections=dict(ledger.row_rejections.most_common()),
        row_flags=ledger.row_flags,
        rows_unaccounted=ledger.rows_unaccounted,
        samples_expected=dict(ledger.samples_expected),
        samples_written=dict(ledger.samples_written),
        samples_unchanged=dict(ledger.samples_unchanged),
        samples_refused=len(ledger.samples_refused),
        readback_checked=len(ledger.reservoir),
        readback_mismatches=mismatches,
        documents=dict(ledger.documents),
        records=dict(ledger.records),
        restamped_chains=ledger.restamped_chains,
        freshness_misses=dict(ledger.freshness_misses),
        missed_runs=dict(ledger.missed_runs),
        max_backlog=ledger.max_backlog,
        dispatched=scheduler.dispatched,
        abandoned_at_end=ledger.abandoned,
        archive_files=files,
        archive_rows=rows,
        archive_problems=problems,
        crashes=ledger.crashes[:20],
    )


async def _progress(
    pipeline: SoakPipeline, scheduler: StreamScheduler, stop: asyncio.Event, out: Callable[[str], None]
) -> None:
    """A line per simulated hour: how far, how many calls, the backlog."""
    ledger = pipeline.ledger
    while not stop.is_set():
        await pipeline.clock.sleep(3600.0)
        out(
            f"  t+{pipeline.sim_seconds() / 3600:5.1f} h: {sum(ledger.calls.values())} calls, "
            f"{sum(ledger.samples_written.values())} samples, backlog {scheduler.backlog}, "
            f"errors {sum(ledger.errors.values())}, crashes {len(ledger.crashes)}"
        )


#: Families the soak archives. Options are left out: ``archive.export_day`` reads a family for
#: a whole day in one ``TS.MRANGE`` and parses it in Python, and the matrix writes millions of
#: option samples an hour (a soak finding for the archive, reported with the numbers).
ARCHIVED_FAMILIES = ("underlyings", "bars", "indicators", "macro")


async def _archive(redis: Redis, prefix: str, start: datetime, end: datetime, home: Path) -> tuple[int, int, list[str]]:
    """Export every simulated UTC day to Parquet and verify it against the manifest."""
    root = home / "archive"
    day, files, rows = start.date(), 0, 0
    while day <= end.date():
        written = await archive.export_day(redis, root, day, key_prefix=prefix, families=ARCHIVED_FAMILIES)
        files += len(written)
        rows += sum(entry["rows"] for entry in written.values())
        day += timedelta(days=1)
    problems = [f"{p.path}: {p.reason}" for p in archive.verify(root)]
    return files, rows, problems


def format_report(report: SoakReport) -> str:
    """The report as text."""
    lines = [
        f"simulated {report.simulated_s / 3600:.2f} h in {report.wall_s / 60:.1f} wall min "
        f"(planned {report.planned_calls_per_min} calls/min)",
        f"requests sent {report.requests}; peak {report.peak_requests_per_min} per simulated minute "
        f"(ceiling {report.ceiling}, quota {report.quota})",
        "calls by function: " + ", ".join(f"{k} {v}" for k, v in report.calls.items()),
        "outcomes: " + "; ".join(f"{f}: {o}" for f, o in report.outcomes.items()),
        f"throttle events (client): {report.throttle_events}",
        f"simulator: {json.dumps(report.simulator, sort_keys=True)}",
        f"errors by class: {report.errors}",
        f"rows rejected by reason: {report.row_rejections}; rows flagged {report.row_flags}; "
        f"rows unaccounted {report.rows_unaccounted}",
        f"samples expected {report.samples_expected}",
        f"samples written  {report.samples_written} (of which already stored, not resent: "
        f"{report.samples_unchanged}); refused {report.samples_refused}",
        f"read back {report.readback_checked} sampled samples: {len(report.readback_mismatches)} mismatches",
        f"records stored {report.records}; documents {report.documents}; chains stored again at an event "
        f"time already stored (after the close) {report.restamped_chains}",
        f"freshness misses by bucket (job-minutes over 2 intervals): {report.freshness_misses}",
        f"scheduler: {report.dispatched} calls dispatched, {sum(report.calls.values())} made, "
        f"{report.abandoned_at_end} still queued at the end; max backlog {report.max_backlog}; "
        f"missed runs {report.missed_runs}",
        f"archive ({', '.join(ARCHIVED_FAMILIES)}): {report.archive_files} files, {report.archive_rows} rows, "
        f"problems {report.archive_problems}",
        f"crashes: {report.crashes}",
        "RESULT: " + ("PASS" if report.ok else "FAIL: " + " | ".join(report.failures)),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    parser.add_argument("--start", default=DEFAULT_START.isoformat(), help="simulated start (ISO, aware)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quota", type=int, default=600, help="the simulated plan's requests per minute")
    parser.add_argument("--fault-scale", type=float, default=1.0, help="fault probability multiplier (0 = none)")
    parser.add_argument("--throttle-flip-s", type=float, default=600.0)
    parser.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--simulator", action="store_true", help=argparse.SUPPRESS)
    for internal in ("--port", "--symbols", "--anchor-file", "--stats-file"):
        parser.add_argument(internal, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulator:
        args.port = int(args.port)
        asyncio.run(_simulator_main(args))
        return 0
    options = SoakOptions(
        hours=args.hours,
        speed=args.speed,
        start=datetime.fromisoformat(args.start),
        seed=args.seed,
        quota=args.quota,
        fault_scale=args.fault_scale,
        throttle_flip_s=args.throttle_flip_s,
    )
    report = asyncio.run(run(options))
    print(format_report(report), flush=True)
    if args.report_json:
        args.report_json.write_text(json.dumps(asdict(report), indent=1, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

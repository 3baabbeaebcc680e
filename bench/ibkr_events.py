"""Benchmark: IBKR market-data events/s one ingest process sustains, and p99 event → topic latency.

Target (the issue): at least 10,000 events/s at p99 <= 20 ms.

Processes, so that nothing measured shares a GIL with the load generator:

- the TWS simulator, a child process (this script with ``--simulator``) on its own clock:
  a regular session of today (10:30 New York onwards) running ``--speed`` times faster than
  the wall clock, re-quoting every subscription each ``--tick-ms``;
- the embedded Tansu broker and Redis Stack (``quanticity.runtime``), as ``quanticity up``
  starts them;
- this process: the production ``ingest-ibkr`` role (``IbkrIngest`` in a ``Platform``).

Loads, on the same simulator and the same contracts:

- ``simulator``: the simulator's own pricing. Each tick crosses a simulated second, so
  every option line changes every tick. The simulator needs ~240 µs of CPU per option
  update (quote engine ~190 µs, rendering ~50 µs), so it saturates its core at a few
  thousand events per second: this load shows where the simulator stops, not the ingest.
- ``amplified``: the simulator's feed is paused and the child re-sends, round robin over
  every market-data line, the messages of a quote change (bid and ask ``tickPrice``; for
  options also the bid/ask/model ``tickOptionComputation``: the same ~5 messages per event
  as a priced option update), alternating between the line's last quote and the same
  quote one increment wider, from frames encoded once (~1 µs of simulator CPU per event).
  The offered rate is swept upwards until the ingest no longer keeps up.

For each load the production role is measured first, then a bare ``ib_insync`` client on
the same contracts that only counts ticker updates (the reference): their ratio is what
the role costs on top of ``ib_insync``. The role runs with ``quote_coalesce_ms=0`` so every
event becomes a record (the shipped 100 ms coalescing would cap a line at 10 records/s).
With ``--profiles dev,production`` the role runs once per broker profile: ``dev`` is what
the embedded default uses (Tansu workaround: one record per produce batch), ``production``
lets aiokafka batch (Redpanda/Kafka settings; safe here because the role has no table).

Definitions. An *event* is one ticker that changed in one socket read (one entry of
``pendingTickersEvent``); with coalescing off each becomes one record. *Latency* runs from
the event's arrival in ``ib_insync`` to the broker's acknowledgement of its record:
``ib_insync`` stamps ``ticker.time`` when the socket read that carried the update begins
(``Wrapper.tcpDataArrived``); the role copies it into ``event_time`` of L1 quote records;
the end is when the produce future of the record completes (``TimedIngest``, a subclass
of the role, adds a done-callback to each record's future). Tick-by-tick, bar and depth
records carry the exchange's time and are counted but not timed. A rate is *sustained*
when the role turns >= 95% of the offered events into acknowledged records and its queue
holds less than half a second of records at the end of the window.

Which side saturates: CPU seconds per wall second of the simulator, this process, the
broker and Redis over each window (from ``/proc``), and the simulator's feed ticks achieved
against those scheduled (a late feed skips ticks).

Run from the project root::

    PYTHONPATH=. python bench/ibkr_events.py            # ~8 minutes: both profiles, full sweep
    PYTHONPATH=. python bench/ibkr_events.py --quick    # ~3 minutes: dev profile, 10k/s only
    PYTHONPATH=. python bench/ibkr_events.py --profile 5000  # also cProfile the 5000/s window

``SimulatorChild`` is shared with ``bench/soak_ibkr.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ib_insync import IB, Contract, Ticker

from bench.common import ROOT, cpu_seconds, embedded_runtime
from quanticity.agents.ingest_ibkr import IbkrIngest
from quanticity.app.context import RoleContext
from quanticity.app.platform import Platform
from quanticity.app.roles import RoleSpec
from quanticity.observability.logging import configure_logging
from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.runtime.probes import tcp_answers
from quanticity.runtime.process import ChildProcess, free_loopback_port
from quanticity.schemas import AuctionState, OptionQuoteBatch, Record, UnderlyingQuote
from quanticity.settings import Settings, SettingsHolder

NEW_YORK = ZoneInfo("America/New_York")
UNDERLYINGS = ("SPY", "QQQ", "IWM", "SPX")
TIMED = (UnderlyingQuote, OptionQuoteBatch, AuctionState)  # records whose event_time is the arrival in ib_insync
TARGET_EVENTS_S = 10_000.0
TARGET_P99_MS = 20.0
SUSTAINED_SHARE = 0.95
_RAW_CLIENT_ID = 901
_REQUESTS_PER_S = 40  # the raw client's subscription pace (the simulator allows 50 messages/s)


# --------------------------------------------------------------------------- the simulator child
def session_start(today: date | None = None) -> datetime:
    """10:30 New York on ``today`` (New York's date by default): mid-morning of a regular session.

    The ingest role picks its 0DTE expiry from the wall clock's date, so the simulator's
    day is today's (on a weekend or holiday the role finds no 0DTE and takes 1DTE/swing).
    """
    day = today or datetime.now(NEW_YORK).date()
    return datetime.combine(day, clock_time(10, 30), tzinfo=NEW_YORK).astimezone(UTC)


class Amplifier:
    """Re-sends quote changes of every market-data line from pre-encoded frames (see the module docstring).

    Args:
        sim: the running ``TwsSimulator`` of this child process.
        hz: how often per second a share of the lines is sent.
    """

    def __init__(self, sim: Any, hz: float = 200.0) -> None:
        self.sim = sim
        self.interval = 1.0 / hz
        self.rate = 0.0  # events per second; 0 = off
        self.sent = 0
        self._frames: dict[tuple[int, int, int], tuple[bytes, bytes]] = {}
        self._flip: dict[tuple[int, int], int] = {}
        self._cursor = 0

    def _pair(self, session: Any, sub: Any) -> tuple[bytes, bytes] | None:
        """The two encoded states of one line (its last quote, and one increment wider)."""
        from quanticity.simulation.tws import messages as m
        from quanticity.simulation.tws.protocol import frame

        key = (id(session), sub.req_id, sub.contract.con_id)
        pair = self._frames.get(key)
        if pair is not None:
            return pair
        q = self.sim.state.latest.get(sub.contract.con_id)
        if q is None or q.bid is None or q.ask is None or q.bid <= q.increment:
            return None
        states = []
        for widen in (0, 1):
            inc = q.increment * widen
            msgs = [
                m.tick_price(sub.req_id, 1, round(q.bid - inc, 6), q.bid_size),
                m.tick_price(sub.req_id, 2, round(q.ask + inc, 6), q.ask_size),
            ]
            o = q.option
            if o is not None:
                for tick, greeks in ((10, o.bid), (11, o.ask), (13, o.model)):
                    if greeks is not None:
                        moved = replace(greeks, implied_vol=greeks.implied_vol * (1.0 + 1e-4 * widen))
                        msgs.append(m.tick_option_computation(sub.req_id, tick, moved, price_based=tick != 13))
            states.append(b"".join(frame(msg) for msg in msgs))
        pair = self._frames[key] = (states[0], states[1])
        return pair

    async def run(self) -> None:
        """Send ``rate`` line updates per second, round robin, until cancelled."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        carry = 0.0
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            elapsed, last = now - last, now
            if self.rate <= 0 or self.sim.state.faults.data_paused:
                carry = 0.0
                continue
            lines = [
                (session, sub, pair)
                for session in self.sim.feed.sessions()
                for sub in session.quote_subs.values()
                if sub.kind == "mkt_data" and not sub.snapshot and (pair := self._pair(session, sub)) is not None
            ]
            if not lines:
                continue
            carry += self.rate * elapsed
            n = min(int(carry), len(lines))  # a line at most once per write: ib_insync merges repeats
            carry -= int(carry)
            out: dict[Any, list[bytes]] = {}
            for i in range(n):
                session, sub, pair = lines[(self._cursor + i) % len(lines)]
                key = (id(session), sub.req_id)
                flip = self._flip[key] = self._flip.get(key, 0) ^ 1
                out.setdefault(session, []).append(pair[flip])
            self._cursor = (self._cursor + n) % len(lines)
            for session, chunks in out.items():
                if not session.writer.is_closing():
                    session.writer.write(b"".join(chunks))
                    self.sent += len(chunks)


async def _simulator_main(args: argparse.Namespace) -> None:
    """The ``--simulator`` process: serve on a scaled clock until SIGTERM, keep a stats file current."""
    from quanticity.simulation.market import SimulatedMarket
    from quanticity.simulation.tws.config import TwsSimConfig
    from quanticity.simulation.tws.server import TwsSimulator

    start = datetime.fromisoformat(args.start)
    speed = float(args.speed)
    anchor = time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=(time.monotonic() - anchor) * speed)

    market = SimulatedMarket(int(args.seed), start, args.symbols.split(","))
    config = TwsSimConfig(tick_interval_s=float(args.tick_ms) / 1000.0, max_messages_per_second=int(args.max_messages))
    sim = TwsSimulator(market, config, clock)
    await sim.start("127.0.0.1", int(args.port), int(args.control_port))
    amplifier = Amplifier(sim)
    pump = asyncio.create_task(amplifier.run(), name="amplifier")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats_file, control_file = Path(args.stats_file), Path(args.stats_file).with_suffix(".control")
    control: dict[str, Any] = {"feed": True, "amplify": 0.0}

    def write_stats(final: bool) -> None:
        stats = simulator_stats(sim, clock(), final)
        stats.update(control=control, amplified=amplifier.sent)
        tmp = stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(stats_file)

    try:
        beat = 0
        while not stop.is_set():
            wanted = _read_json(control_file)
            if wanted and wanted != control:
                if wanted.get("feed", True) and not control["feed"]:
                    sim.feed.start()
                elif not wanted.get("feed", True) and control["feed"]:
                    await sim.feed.stop()
                amplifier.rate = float(wanted.get("amplify", 0.0))
                control = wanted
                write_stats(final=False)
            write_stats(final=False)
            beat += 1
            if os.getppid() == 1:  # the parent died without stopping us
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stop.wait()
    finally:
        pump.cancel()
        write_stats(final=True)
        await sim.stop()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def simulator_stats(sim: Any, now: datetime, final: bool) -> dict[str, Any]:
    """What the parent reads from the simulator: feed progress and, at the end, orders and positions."""
    stats: dict[str, Any] = {
        "monotonic": time.monotonic(),
        "feed_ticks": sim.feed.ticks,
        "cpu_s": time.process_time(),
        "sim_now": now.isoformat(),
        "status": sim.status(),
        "final": final,
    }
    if final:
        stats["orders"] = [
            {
                "client_id": o.client_id,
                "order_id": o.order_id,
                "order_ref": o.order_ref,
                "symbol": o.contract.symbol,
                "con_id": o.contract.con_id,
                "action": o.action,
                "quantity": str(o.quantity),
                "filled": str(o.filled),
                "status": o.status,
            }
            for o in sim.orders
        ]
        stats["executions"] = [
            {
                "exec_id": e.exec_id,
                "order_ref": e.order_ref,
                "client_id": e.client_id,
                "order_id": e.order_id,
                "con_id": e.contract.con_id,
                "symbol": e.contract.symbol,
                "side": e.side,
                "shares": str(e.shares),
                "price": str(e.price),
                "time": e.time.isoformat(),
            }
            for e in sim.executions
        ]
        stats["positions"] = [
            {"con_id": p.contract.con_id, "symbol": p.contract.symbol, "quantity": str(p.quantity)}
            for p in sim.account.positions.values()
        ]
    return stats


class SimulatorChild:
    """The TWS simulator in a child process, on a scaled clock, with its fault-control HTTP API.

    Args:
        home: where its log, stats and control files go.
        start: the simulator clock's start (aware).
        speed: simulated seconds per wall second.
        tick_ms: wall milliseconds between two re-quotes of every subscription.
        symbols: symbols the simulated market lists (besides its default universe).
        seed: the market's seed.
        max_messages: the simulator's client message limit per second (TWS: 50).
    """

    def __init__(
        self,
        home: Path,
        start: datetime,
        speed: float,
        tick_ms: int,
        symbols: Sequence[str],
        seed: int = 7,
        max_messages: int = 50,
    ) -> None:
        self.port = free_loopback_port()
        self.control_port = free_loopback_port()
        self.stats_file = home / "tws-sim-stats.json"
        self.control_file = self.stats_file.with_suffix(".control")
        self.log_path = home / "tws-sim.log"
        self.start_time = start
        self.speed = speed
        self.tick_ms = tick_ms
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--simulator",
            f"--port={self.port}",
            f"--control-port={self.control_port}",
            f"--start={start.isoformat()}",
            f"--speed={speed}",
            f"--tick-ms={tick_ms}",
            f"--seed={seed}",
            f"--max-messages={max_messages}",
            f"--symbols={','.join(symbols)}",
            f"--stats-file={self.stats_file}",
        ]
        self.process = ChildProcess("tws-sim", argv, self.log_path, env={"PYTHONPATH": str(ROOT)})

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return self.process.pid

    @property
    def control_url(self) -> str:
        """Base URL of the simulator's fault-control API (``POST /faults/drop`` …)."""
        return f"http://127.0.0.1:{self.control_port}"

    async def start(self, timeout_s: float = 120.0) -> None:
        """Spawn the simulator and wait until it accepts connections.

        Raises:
            quanticity.errors.RuntimeStartError: it exited or did not listen within ``timeout_s``.
        """
        self.process.start()
        await self.process.wait_healthy(lambda: tcp_answers("127.0.0.1", self.port), timeout_s)

    def stats(self) -> dict[str, Any]:
        """The latest stats the simulator wrote (empty before the first)."""
        return _read_json(self.stats_file)

    async def fresh_stats(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Stats written after this call (the simulator writes them every 0.1 s)."""
        since = time.monotonic()
        deadline = since + timeout_s
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats.get("monotonic", 0.0) >= since:
                return stats
            await asyncio.sleep(0.02)
        return self.stats()

    async def control(self, *, feed: bool, amplify: float, timeout_s: float = 10.0) -> None:
        """Run or pause the simulator's own feed and set the amplified rate; wait until applied.

        Raises:
            RuntimeError: the simulator did not apply it within ``timeout_s``.
        """
        wanted = {"feed": feed, "amplify": float(amplify)}
        tmp = self.control_file.with_suffix(".tmp-control")
        tmp.write_text(json.dumps(wanted))
        tmp.replace(self.control_file)
        deadline = time.monotonic() + timeout_s
        while self.stats().get("control") != wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not apply {wanted} within {timeout_s:.0f} s")
            await asyncio.sleep(0.05)

    def cpu_seconds(self) -> float:
        """CPU seconds the simulator process has used so far."""
        return cpu_seconds(self.pid) if self.pid is not None and self.process.alive() else 0.0

    def stop(self) -> dict[str, Any]:
        """SIGTERM (the simulator writes its final stats), wait; returns those stats."""
        self.process.stop(timeout_s=20.0)
        return self.stats()


# --------------------------------------------------------------------------- measuring
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class AckClock:
    """Acknowledged events and the arrival → ack latency of the timed ones.

    An option quote batch carries one event per row; each of its events has the batch's latency.
    """

    acked: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def on_ack(self, record: Record, future: asyncio.Future[Any]) -> None:
        """Done-callback of a produce future."""
        if future.cancelled() or future.exception() is not None:
            return
        events = len(record) if isinstance(record, OptionQuoteBatch) else 1
        self.acked += events
        if isinstance(record, TIMED):
            self.latencies_ms.extend([(time.time() - record.event_time.timestamp()) * 1000.0] * events)


class TimedIngest(IbkrIngest):
    """The production role, telling ``clock`` when the broker acknowledges each record.

    Args:
        app, ctx, role: as :class:`IbkrIngest`.
        clock: told about each record when its produce future completes.
    """

    def __init__(self, app: Any, ctx: RoleContext, role: str, clock: AckClock) -> None:
        super().__init__(app, ctx, role)
        self.clock = clock

    async def _send(self, record: Record, topic: str) -> Awaitable[Any] | Exception:
        ack = await super()._send(record, topic)
        if isinstance(ack, asyncio.Future):
            ack.add_done_callback(lambda fut: self.clock.on_ack(record, fut))
        return ack


class CpuMeter:
    """CPU seconds of this process, the simulator and the embedded servers between two marks."""

    def __init__(self, sim: SimulatorChild, servers: dict[str, int | None]) -> None:
        self.sim = sim
        self.servers = {name: pid for name, pid in servers.items() if pid is not None}
        self._start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        out = {"this process": time.process_time(), "simulator": self.sim.cpu_seconds()}
        for name, pid in self.servers.items():
            with contextlib.suppress(OSError):
                out[name] = cpu_seconds(pid)
        return out

    def mark(self) -> None:
        """Start counting."""
        self._start = self._read()

    def used(self) -> dict[str, float]:
        """CPU seconds per process since ``mark``."""
        now = self._read()
        return {name: now[name] - self._start.get(name, now[name]) for name in now}


@dataclass
class Window:
    """What one client measured under one load."""

    client: str  # "ingest role (dev)", "raw ib_insync"…
    load: str  # "simulator" or "amplified N/s"
    seconds: float
    offered: int  # events the amplifier sent (0 for the simulator load: unknown there)
    events: int  # ticker updates ib_insync reported
    records: int  # records the role emitted (0 for the raw client)
    acked: int  # events the broker acknowledged in the window (a batch: one per row)
    messages: int  # TWS messages decoded
    latencies_ms: list[float]
    cpu_s: dict[str, float]
    sim_ticks: int
    sim_ticks_scheduled: float
    backlog_end: int = 0
    backlog_max: int = 0

    def per_s(self, n: float) -> float:
        return n / self.seconds if self.seconds > 0 else 0.0

    @property
    def sustained(self) -> bool:
        """The role kept up: >= 95% of the offered events (and of those received) acknowledged, < 0.5 s of backlog."""
        offered = self.offered if self.offered else self.events
        return (
            self.acked >= SUSTAINED_SHARE * min(offered, self.events)
            and self.events >= 0.9 * offered
            and self.backlog_end < 0.5 * self.per_s(self.acked) + 50
        )

    def summary(self) -> dict[str, Any]:
        """The window as JSON-friendly numbers."""
        lat = self.latencies_ms
        return {
            "client": self.client,
            "load": self.load,
            "seconds": round(self.seconds, 2),
            "offered_per_s": round(self.per_s(self.offered), 1),
            "events_per_s": round(self.per_s(self.events), 1),
            "records_per_s": round(self.per_s(self.records), 1),
            "acked_per_s": round(self.per_s(self.acked), 1),
            "tws_messages_per_s": round(self.per_s(self.messages), 1),
            "latency_ms": {
                "n": len(lat),
                "p50": round(percentile(lat, 0.5), 2),
                "p99": round(percentile(lat, 0.99), 2),
                "max": round(max(lat), 2) if lat else None,
                "mean": round(statistics.fmean(lat), 2) if lat else None,
            },
            "cpu_per_wall_s": {k: round(v / self.seconds, 2) for k, v in self.cpu_s.items()},
            "cpu_us_per_event": round(1e6 * self.cpu_s.get("this process", 0.0) / self.events, 1)
            if self.events
            else None,
            "sim_feed_ticks": self.sim_ticks,
            "sim_feed_ticks_scheduled": round(self.sim_ticks_scheduled),
            "queue_backlog_end": self.backlog_end,
            "queue_backlog_max": self.backlog_max,
        }


@dataclass(frozen=True)
class BenchOptions:
    """How hard the simulator streams, which loads run and how long each window measures."""

    strikes: int = 10
    buckets: tuple[str, ...] = ("0dte", "1dte", "swing")
    tick_ms: int = 100
    speed: float = 10.0
    seconds: float = 15.0
    settle_s: float = 5.0
    rates: tuple[float, ...] = (2500.0, 5000.0, 7500.0, 10_000.0, 12_500.0)
    profiles: tuple[str, ...] = ("dev", "production")
    seed: int = 7
    profile_rate: float = 0.0  # cProfile the window of this amplified rate (0: none)


class Client(Protocol):
    """One measured client: the role (``IngestClient``) or the bare loop (``RawClient``)."""

    name: str
    latencies_ms: list[float]

    def counts(self) -> tuple[int, int, int, int]:
        """Events, records, acked records and TWS messages so far."""

    def backlog(self) -> int:
        """Records waiting in the role's queue (0 for the bare loop)."""


async def measure(
    client: Client,
    load: str,
    sim: SimulatorChild,
    cpu: CpuMeter,
    options: BenchOptions,
    profiler: cProfile.Profile | None = None,
) -> Window:
    """Let the load settle (and a backlog of the previous load drain, for up to 30 s), then count over one window."""
    drain_until = time.monotonic() + 30.0
    while client.backlog() > 100 and time.monotonic() < drain_until:
        await asyncio.sleep(0.1)
    await asyncio.sleep(options.settle_s)
    stats0 = await sim.fresh_stats()
    events0, records0, acked0, msgs0 = client.counts()
    client.latencies_ms.clear()
    cpu.mark()
    backlog_max = 0
    started = time.monotonic()
    if profiler is not None:
        profiler.enable()
    while time.monotonic() - started < options.seconds:
        await asyncio.sleep(0.05)
        backlog_max = max(backlog_max, client.backlog())
    if profiler is not None:
        profiler.disable()
    seconds = time.monotonic() - started
    events1, records1, acked1, msgs1 = client.counts()
    used = cpu.used()
    latencies = list(client.latencies_ms)
    backlog = client.backlog()
    stats1 = await sim.fresh_stats()
    sim_seconds = max(stats1.get("monotonic", 0.0) - stats0.get("monotonic", 0.0), 1e-9)
    return Window(
        client.name,
        load,
        seconds,
        round((stats1.get("amplified", 0) - stats0.get("amplified", 0)) / sim_seconds * seconds),
        events1 - events0,
        records1 - records0,
        acked1 - acked0,
        msgs1 - msgs0,
        latencies,
        used,
        round((stats1.get("feed_ticks", 0) - stats0.get("feed_ticks", 0)) / sim_seconds * seconds),
        seconds * 2000.0 / options.tick_ms if load == "simulator" else 0.0,
        backlog,
        backlog_max,
    )


class IngestClient:
    """The production role in a ``Platform``, its acknowledgements timed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events = 0
        self.clock = AckClock()
        self.latencies_ms = self.clock.latencies_ms
        self.ingest: IbkrIngest | None = None

    def install(self, app: Any, ctx: RoleContext, role: str) -> None:
        """The role installer: ``TimedIngest`` (the production role, acks timed) as the app's task."""

        @app.task  # type: ignore[untyped-decorator]  # Faust's decorators are untyped
        async def run_ibkr_ingest() -> None:
            ingest = TimedIngest(app, ctx, role, self.clock)
            ingest.conn.ib.pendingTickersEvent += self._count
            self.ingest = ingest
            await ingest.run()

    def _count(self, tickers: set[Ticker]) -> None:
        self.events += len(tickers)

    def counts(self) -> tuple[int, int, int, int]:
        ingest = self.ingest
        if ingest is None:
            return 0, 0, 0, 0
        return self.events, ingest.feed.records, self.clock.acked, ingest.conn.ib.client.connectionStats().numMsgRecv

    def backlog(self) -> int:
        return self.ingest.queue.qsize() if self.ingest is not None else 0

    async def subscribed(self, timeout_s: float = 900.0) -> IbkrIngest:
        """Wait until the role has subscribed every option line it picked.

        Raises:
            RuntimeError: not within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ingest = self.ingest
            if ingest is not None and ingest.options:
                lines = sum(1 for name in ingest.conn.subscription_names if name.startswith("mkt:"))
                if lines >= len(ingest.underlyings) + len(ingest.options):
                    return ingest
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the ingest role did not subscribe its option lines within {timeout_s:.0f} s")


class RawClient:
    """A bare ``ib_insync`` client that only counts ticker updates."""

    name = "raw ib_insync"

    def __init__(self) -> None:
        self.ib = IB()
        self.events = 0
        self.latencies_ms: list[float] = []

    def backlog(self) -> int:
        return 0

    def _count(self, tickers: set[Ticker]) -> None:
        self.events += len(tickers)

    async def start(self, port: int, contracts: Sequence[Contract], option_ticks: str, underlying_ticks: str) -> None:
        """Connect and request L1 of ``contracts`` with the role's generic ticks."""
        await self.ib.connectAsync("127.0.0.1", port, clientId=_RAW_CLIENT_ID, timeout=20)
        self.ib.reqMarketDataType(1)
        self.ib.pendingTickersEvent += self._count
        for i, contract in enumerate(contracts):
            self.ib.reqMktData(contract, option_ticks if contract.secType == "OPT" else underlying_ticks, False, False)
            if i % _REQUESTS_PER_S == _REQUESTS_PER_S - 1:
                await asyncio.sleep(1.0)

    def counts(self) -> tuple[int, int, int, int]:
        return self.events, 0, 0, self.ib.client.connectionStats().numMsgRecv

    def stop(self) -> None:
        self.ib.disconnect()


def bench_settings(options: BenchOptions, runtime: EmbeddedRuntime, port: int, home: Path, profile: str) -> Settings:
    """Settings of the role: embedded servers, the simulator child, no coalescing, many option lines."""
    return Settings(
        _env_file=None,
        mode="sim",
        kafka={"bootstrap": runtime.bootstrap, "topic_prefix": f"bench-{profile}-", "profile": profile},
        redis={"url": runtime.redis_url, "key_prefix": f"bench:{profile}:"},
        embedded={"home": home / "platform"},
        observability={"metrics_port": 0, "textfile_dir": home / "metrics"},
        demo={"enabled": False},
        ibkr={
            "host": "127.0.0.1",
            "port": port,
            "simulator": {"enabled": False},
            "underlyings": list(UNDERLYINGS),
            "quote_coalesce_ms": 0,
            "max_market_data_lines": 10_000,
            "options": {"buckets": list(options.buckets), "strikes_each_side": options.strikes},
        },
    )


async def _sweep(
    client: Client,
    sim: SimulatorChild,
    cpu: CpuMeter,
    options: BenchOptions,
    out: Callable[[str], None],
    stop_when_behind: bool,
) -> list[Window]:
    """The simulator load, then the amplified rates upwards (stopping after the first one not sustained)."""
    windows = []
    await sim.control(feed=False, amplify=0.0)
    windows.append(await measure(client, "idle", sim, cpu, options))
    out(format_window(windows[-1]))
    await sim.control(feed=True, amplify=0.0)
    windows.append(await measure(client, "simulator", sim, cpu, options))
    out(format_window(windows[-1]))
    await sim.control(feed=False, amplify=0.0)
    for rate in options.rates:
        await sim.control(feed=False, amplify=rate)
        profiler = cProfile.Profile() if rate == options.profile_rate and isinstance(client, IngestClient) else None
        windows.append(await measure(client, f"amplified {rate:.0f}/s", sim, cpu, options, profiler))
        out(format_window(windows[-1]))
        if profiler is not None:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(50)
        if stop_when_behind and not windows[-1].sustained:
            break
    await sim.control(feed=True, amplify=0.0)
    return windows


async def watch_children(runtime: EmbeddedRuntime, sim: SimulatorChild) -> None:
    """Return (so that the caller can stop) when the broker, Redis or the simulator has exited."""
    while True:
        await asyncio.sleep(0.5)
        gone = [s.name for s in runtime.services if s.process is None or not s.process.alive()]
        if not sim.process.alive():
            gone.append("tws-sim")
        if gone:
            raise RuntimeError(f"{', '.join(gone)} exited during the run (see the logs under {sim.log_path.parent})")


async def run(options: BenchOptions, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Start everything, measure every load for each profile and the raw client; returns the summary.

    Raises:
        RuntimeError: a child process (broker, Redis, simulator) exited during the run.
    """
    windows: list[Window] = []
    contracts: list[Contract] = []
    with tempfile.TemporaryDirectory(prefix="bench-ibkr-") as tmp:
        home = Path(tmp)
        runtime = embedded_runtime(home / "embedded", with_broker=True)
        sim = SimulatorChild(home, session_start(), options.speed, options.tick_ms, UNDERLYINGS, options.seed)
        try:
            await runtime.start(watch=False)
            await sim.start()
            out(
                f"simulator pid {sim.pid}: speed {options.speed:g}, tick {options.tick_ms} ms, "
                f"clock from {sim.start_time.isoformat()}; machine: {os.cpu_count()} cores"
            )
            guard = asyncio.ensure_future(watch_children(runtime, sim))
            measuring = asyncio.ensure_future(_measure_all(options, runtime, sim, home, windows, out))
            try:
                await asyncio.wait({guard, measuring}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                guard.cancel()
                if not measuring.done():
                    measuring.cancel()
                await asyncio.gather(guard, measuring, return_exceptions=True)
            error = None if guard.cancelled() else guard.exception()
            if error is not None:
                raise error  # a child process exited during the run
            contracts = measuring.result()  # re-raises what ended the measurements
        finally:
            sim.stop()
            runtime.stop_processes()
    summary = {"options": asdict(options), "lines": len(contracts), "windows": [w.summary() for w in windows]}
    out(format_verdict(windows))
    return summary


def _constant(settings: Settings) -> Callable[[], Settings]:
    """A settings loader that always returns ``settings`` (the bench never reloads)."""
    return lambda: settings


async def _measure_all(
    options: BenchOptions,
    runtime: EmbeddedRuntime,
    sim: SimulatorChild,
    home: Path,
    windows: list[Window],
    out: Callable[[str], None],
) -> list[Contract]:
    """Every profile of the role, then the raw client on the role's contracts; returns those contracts."""
    pids = runtime.pids()
    cpu = CpuMeter(sim, {"broker (tansu)": pids.get("broker"), "redis": pids.get("redis")})
    contracts: list[Contract] = []
    settings: Settings | None = None
    for profile in options.profiles:
        settings = bench_settings(options, runtime, sim.port, home, profile)
        client = IngestClient(f"ingest role ({profile})")
        metrics = Metrics()
        spec = RoleSpec("ingest-ibkr", "the production ingest role, its acks timed", client.install)
        holder = SettingsHolder(settings, _constant(settings), metrics)
        platform = Platform(holder, metrics, [spec], banner=io.StringIO())
        started = time.monotonic()
        await platform.start()
        try:
            ingest = await client.subscribed()
            contracts = list(ingest.underlyings.values()) + list(ingest.options)
            out(
                f"{client.name}: {len(ingest.underlyings)} underlyings + {len(ingest.options)} options "
                f"subscribed in {time.monotonic() - started:.0f} s"
            )
            windows += await _sweep(client, sim, cpu, options, out, stop_when_behind=True)
        finally:
            await platform.stop()
    assert settings is not None  # noqa: S101 - at least one profile ran
    raw = RawClient()
    await raw.start(sim.port, contracts, settings.ibkr.options.generic_ticks, settings.ibkr.underlying_generic_ticks)
    try:
        windows += await _sweep(raw, sim, cpu, options, out, stop_when_behind=False)
    finally:
        raw.stop()
    return contracts


# --------------------------------------------------------------------------- reporting
def format_window(w: Window) -> str:
    """One line per window."""
    s = w.summary()
    lat = s["latency_ms"]
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in s["cpu_per_wall_s"].items())
    timing = f"p50 {lat['p50']:7.1f} ms  p99 {lat['p99']:7.1f} ms" if lat["n"] else " " * 30
    ticks = f"; feed ticks {w.sim_ticks}/{w.sim_ticks_scheduled:.0f}" if w.load == "simulator" else ""
    backlog = f"; queue end {w.backlog_end} max {w.backlog_max}" if w.records else ""
    return (
        f"{w.client:<26} {w.load:<18} offered {s['offered_per_s']:6.0f}/s  events {s['events_per_s']:6.0f}/s  "
        f"acked {s['acked_per_s']:6.0f}/s  msgs {s['tws_messages_per_s']:6.0f}/s  {timing}  "
        f"cpu/event {s['cpu_us_per_event'] or 0.0:6.1f} µs"
        f"  [cpu/s: {cpu}{ticks}{backlog}]{'' if not w.records or w.sustained else '  NOT SUSTAINED'}"
    )


def format_verdict(windows: Sequence[Window]) -> str:
    """Best sustained rate per client, the reference ratio at the same load, and the target check."""
    lines = ["", "best sustained amplified rate per client (p99 at that rate):"]
    raw = {w.load: w for w in windows if w.client == RawClient.name}
    for name in dict.fromkeys(w.client for w in windows if w.records):
        ok = [w for w in windows if w.client == name and w.load.startswith("amplified") and w.sustained]
        sim_load = next((w for w in windows if w.client == name and w.load == "simulator"), None)
        if sim_load is not None:
            ref = raw.get("simulator")
            ratio = f"{sim_load.events / ref.events:.2f}" if ref is not None and ref.events else "n/a"
            lines.append(
                f"  {name}: simulator load {sim_load.per_s(sim_load.acked):.0f} events/s acked "
                f"(raw loop on the same load: {ref.per_s(ref.events) if ref else float('nan'):.0f} events/s, "
                f"ratio {ratio})"
            )
        if not ok:
            lines.append(f"  {name}: no amplified rate sustained")
            continue
        fastest = max(ok, key=lambda w: w.per_s(w.acked))
        lines.append(f"  {name}: highest sustained rate: {_rate_line(fastest, raw)}")
        within = [w for w in ok if percentile(w.latencies_ms, 0.99) <= TARGET_P99_MS]
        best = max(within, key=lambda w: w.per_s(w.acked)) if within else None
        met = best is not None and best.per_s(best.acked) >= TARGET_EVENTS_S * SUSTAINED_SHARE
        lines.append(
            f"  {name}: highest rate with p99 <= {TARGET_P99_MS:.0f} ms: "
            f"{_rate_line(best, raw) if best is not None else 'none'} -> target "
            f"({TARGET_EVENTS_S:.0f}/s at p99 <= {TARGET_P99_MS:.0f} ms) {'MET' if met else 'NOT met'}"
        )
    return "\n".join(lines)


def _rate_line(window: Window, raw: dict[str, Window]) -> str:
    """Rate, latency and CPU per event of one window, against the raw client at the same load."""
    ref = raw.get(window.load)
    overhead = (
        f"; cpu/event {1e6 * window.cpu_s['this process'] / max(window.events, 1):.0f} µs vs raw "
        f"{1e6 * ref.cpu_s['this process'] / max(ref.events, 1):.0f} µs"
        if ref is not None
        else ""
    )
    return (
        f"{window.per_s(window.acked):.0f} events/s at {window.load}, p50 "
        f"{percentile(window.latencies_ms, 0.5):.1f} ms, p99 {percentile(window.latencies_ms, 0.99):.1f} ms{overhead}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--strikes", type=int, default=BenchOptions.strikes, help="strikes each side of the money")
    parser.add_argument("--tick-ms", type=int, default=BenchOptions.tick_ms, help="simulator re-quote interval")
    parser.add_argument("--speed", type=float, default=BenchOptions.speed, help="simulated seconds per wall second")
    parser.add_argument("--seconds", type=float, default=BenchOptions.seconds, help="measured window per load")
    parser.add_argument("--rates", default=",".join(f"{r:.0f}" for r in BenchOptions.rates), help="amplified rates")
    parser.add_argument("--profiles", default=",".join(BenchOptions.profiles), help="broker profiles of the role")
    parser.add_argument("--quick", action="store_true", help="10k events/s only, short windows")
    parser.add_argument("--profile", type=float, default=0.0, metavar="RATE", help="cProfile the window at RATE")
    parser.add_argument("--report-json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--log-level", default="WARNING", help="log level of the role (logs go to stderr)")
    parser.add_argument("--simulator", action="store_true", help=argparse.SUPPRESS)
    for internal in ("--port", "--control-port", "--start", "--seed", "--max-messages", "--symbols", "--stats-file"):
        parser.add_argument(internal, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulator:
        asyncio.run(_simulator_main(args))
        return 0
    configure_logging(args.log_level, "console")
    options = BenchOptions(
        strikes=args.strikes,
        tick_ms=args.tick_ms,
        speed=args.speed,
        seconds=10.0 if args.quick else args.seconds,
        rates=(TARGET_EVENTS_S,) if args.quick else tuple(float(r) for r in args.rates.split(",")),
        profiles=tuple(p.strip() for p in args.profiles.split(",")),
        profile_rate=args.profile,
    )
    summary = asyncio.run(run(options))
    if args.report_json:
        args.report_json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

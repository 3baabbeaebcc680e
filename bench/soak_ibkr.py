"""Soak: the IBKR client side against the TWS simulator for days of simulated time, with faults.

``python bench/soak_ibkr.py --hours 72 --speed 120`` plays 72 simulated hours in 36 wall
minutes through the production pieces, each on its own client id as in ``quanticity up``:

    ingest-ibkr (client 101): IbkrConnection + MarketDataFeed (L1 of SPY, QQQ, IWM, SPX,
        tick-by-tick and 5 s bars of SPY) + DepthRotator (4 venues through 3 slots)
    execution (client 201): IbkrConnection + IbkrOrderGateway + OrderRouter + OrderLedger (Redis)
    trader: an order action every ``--order-every-min`` simulated minutes: marketable limits
        (fill at once), resting limits near the market (fill later, maybe while a fault has
        the socket down), resting limits far away (cancelled by us or expired at the close),
        and resubmissions of earlier signals (must come back as duplicates, never a 2nd order)
    faults: every ``--fault-every-min`` simulated minutes, through the simulator's control
        API, in turn: drop every connection, a short stall (missed heartbeats), a restart
        (listener down), a long stall (the heartbeat declares the socket dead), a lost
        connectivity to IB (1100 … 1102)

Clock. The simulator (a child process, ``SimulatorChild`` of ``bench/ibkr_events.py``) runs
on an injected clock ``speed`` times faster than the wall clock: prices, sessions, closes,
DAY-order expiry and execution times move through 72 hours. Everything on the client side
is wall time, as it is against a real TWS: heartbeats, reconnect backoff, pacing and fault
durations. The speed compresses the market, not the network; the fault and order
schedules are in simulated minutes and so also run ``speed`` times faster.

Broker. Records go to an in-process sink (counted, latest quote per symbol kept for the
trader's prices), not to Kafka: the soak is about the TWS session, resubscription and order
state, and the broker path is the benchmark's (``bench/ibkr_events.py``) and
``tests/integration/test_ibkr_platform.py``'s. Order and fill state lives in Redis (the
embedded Redis Stack, or ``--redis-url``), as in production.

Report: faults fired, reconnects, disconnects and missed heartbeats per role, data gaps
(socket lost → first market data again) and resubscription times (p50/max, the values the
connection observes in its metrics), records by kind, order actions, and the final
reconciliation of our ledger against the simulator's book: every placed order exists there
exactly once, every execution is in the ledger once, filled quantities, statuses and the
account's positions agree. The exit code is 1 when an invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.common import embedded_runtime
from bench.ibkr_events import SimulatorChild, percentile
from quanticity.execution.ibkr_gateway import IbkrOrderGateway
from quanticity.execution.order_router import OrderAck, OrderRejectedError, OrderRequest, OrderRouter
from quanticity.ibkr.connection_manager import CONNECTED, Endpoint, IbkrConnection
from quanticity.ibkr.contracts import ContractError, qualify, underlying_contract
from quanticity.ibkr.market_data import MarketDataFeed, RecordStamp
from quanticity.ibkr.market_depth import DepthRotator
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.pacing import MARKET_DATA, ORDERS, Pacer
from quanticity.ibkr.settings import DepthSettings, IbkrSettings
from quanticity.observability.logging import configure_logging
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.schemas import Record, UnderlyingQuote
from quanticity.storage.ibkr_events import OrderLedger

#: A Monday, 09:00 New York: three sessions, their closes and nights, a weekend-free span.
DEFAULT_START = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)
UNDERLYINGS = ("SPY", "QQQ", "IWM", "SPX")
TRADED = ("SPY", "QQQ")
ROLES = ("ingest-ibkr", "execution")
FAULTS = ("drop", "stall", "restart", "stall_long", "connectivity_lost")
ACTIONS = ("fill", "rest_near", "fill", "rest_far", "replay", "fill", "cancel")
SOAK_SETTINGS = IbkrSettings(
    heartbeat_interval_s=1.0,
    heartbeat_timeout_s=1.5,
    heartbeat_misses_before_reconnect=3,
    reconnect_backoff_s=[0.25, 0.5, 1.0, 2.0],
    connect_timeout_s=5.0,
)
# Wall seconds each fault lasts: a short stall costs heartbeats, a long one outlives
# heartbeat_misses_before_reconnect probes, so the connection gives the socket up.
FAULT_SECONDS = {"stall": 2.5, "restart": 1.5, "stall_long": 8.0, "connectivity_lost": 2.0}
TWS_STATUS = {  # the simulator's final order status → the ledger's
    "Filled": "filled",
    "Cancelled": "cancelled",
    "ApiCancelled": "cancelled",
    "Inactive": "rejected",
    "Submitted": "submitted",
    "PreSubmitted": "submitted",
}
_SETTLE_WALL_S = 30.0  # how long the end may wait for both roles to be connected and restored
_ACTION_WALL_S = 15.0  # an order action (submit, cancel) that takes longer has hung


@dataclass(frozen=True)
class SoakOptions:
    """What to run."""

    hours: float = 72.0
    speed: float = 120.0
    start: datetime = DEFAULT_START
    seed: int = 11
    tick_ms: int = 250
    fault_every_min: float = 30.0  # simulated minutes between faults (0 = none)
    order_every_min: float = 10.0  # simulated minutes between order actions
    max_gap_s: float = 30.0  # a longer data gap fails the soak
    redis_url: str | None = None  # None = start the embedded Redis Stack
    home: Path | None = None


class RecordingHistogram:
    """Stands in for a labelled histogram of ``IbkrMetrics``: forwards each observation and keeps it."""

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self.values: dict[str, list[float]] = defaultdict(list)

    def labels(self, *labels: str) -> _Recorder:
        return _Recorder(self.histogram.labels(*labels), self.values[labels[0]])


@dataclass
class _Recorder:
    child: Any
    values: list[float]

    def observe(self, value: float) -> None:
        self.child.observe(value)
        self.values.append(value)


@dataclass
class Ledger:
    """What the soak counted on its side."""

    records: Counter[str] = field(default_factory=Counter)
    last_quote: dict[str, UnderlyingQuote] = field(default_factory=dict)
    last_record_at: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    last_fault_at: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    requests: dict[str, OrderRequest] = field(default_factory=dict)  # signal id → request
    far_orders: list[str] = field(default_factory=list)  # order ids that should never fill
    acks: Counter[str] = field(default_factory=Counter)
    hung: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def emit(self, record: Record) -> None:
        """The feed's and the depth rotator's sink."""
        self.records[record.type] += 1
        self.last_record_at = time.monotonic()
        if isinstance(record, UnderlyingQuote):
            self.last_quote[record.symbol] = record


@dataclass
class SoakReport:
    """The soak's findings; ``failures`` lists the invariants that did not hold."""

    options: dict[str, str]
    wall_s: float
    simulated_h: float
    faults: dict[str, int]
    reconnects: dict[str, float]
    disconnects: dict[str, float]
    missed_heartbeats: dict[str, float]
    gaps_s: list[float]
    resubscribe_s: dict[str, list[float]]
    records: dict[str, int]
    actions: dict[str, int]
    acks: dict[str, int]
    connected_at_end: dict[str, bool]
    subscriptions_at_end: dict[str, int]
    data_after_last_fault: bool
    orders_placed: int
    orders_in_simulator: int
    executions: int
    sync_problems: list[str]
    positions: dict[str, dict[str, str]]
    client_fills: str
    hung_actions: list[str]
    crashes: list[str]
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


EXPECTED_SUBSCRIPTIONS = {"mkt_data": len(UNDERLYINGS), "tick_by_tick": 2, "realtime_bars": 1}


def invariants(report: SoakReport, max_gap_s: float = SoakOptions.max_gap_s) -> list[str]:
    """The invariants that fail (empty when the soak passed): crashes, the session's, the orders'."""
    crashes = [f"{len(report.crashes)} crashes, first: {report.crashes[0]}"] if report.crashes else []
    return crashes + session_invariants(report, max_gap_s) + order_invariants(report)


def session_invariants(report: SoakReport, max_gap_s: float = SoakOptions.max_gap_s) -> list[str]:
    """Connection, heartbeat, gap and resubscription invariants that fail."""
    failures = []
    if not report.faults or not sum(report.records.values()):
        failures.append(f"nothing proved: faults {report.faults}, records {sum(report.records.values())}")
    breaking = report.faults.get("drop", 0) + report.faults.get("restart", 0)
    for role in ROLES:
        if report.reconnects.get(role, 0) < breaking:
            failures.append(
                f"reconnects: {role} reconnected {report.reconnects.get(role, 0):.0f} times after {breaking} "
                "connection-breaking faults"
            )
        if not report.connected_at_end.get(role, False):
            failures.append(f"reconnects: {role} is not connected at the end")
    stalls = report.faults.get("stall", 0) + report.faults.get("stall_long", 0)
    if stalls and not sum(report.missed_heartbeats.values()):
        failures.append(f"heartbeats: {stalls} stalls and not one missed heartbeat was noticed")
    if breaking and not report.gaps_s:
        failures.append("gaps: connections were lost but no data gap was measured")
    if report.gaps_s and max(report.gaps_s) > max_gap_s:
        failures.append(f"gaps: the longest data gap was {max(report.gaps_s):.1f} s (limit {max_gap_s:.0f} s)")
    missing = {k: v for k, v in EXPECTED_SUBSCRIPTIONS.items() if report.subscriptions_at_end.get(k, 0) != v}
    if missing:
        failures.append(
            f"resubscription: the simulator has {report.subscriptions_at_end} at the end, expected {missing}"
        )
    if not report.data_after_last_fault:
        failures.append("resubscription: no market data arrived after the last fault")
    return failures


def order_invariants(report: SoakReport) -> list[str]:
    """Order invariants that fail: something filled, the ledger agrees with the simulator, nothing hung."""
    failures = []
    if not report.actions.get("ledger filled"):
        failures.append(f"nothing proved: no order filled ({report.actions})")
    if report.sync_problems:
        failures.append(f"order sync: {len(report.sync_problems)} problems, first: {report.sync_problems[:3]}")
    if report.hung_actions:
        failures.append(f"hung orders: {len(report.hung_actions)} never returned: {report.hung_actions[:2]}")
    return failures


def where(task: asyncio.Future[Any]) -> str:
    """Where a task is waiting: the innermost frames of its coroutine chain."""
    frames = []
    coro: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(frames[-4:]) or "unknown"


# --------------------------------------------------------------------------- the soak's actors
class Soak:
    """The two roles, the trader and the fault schedule against one simulator."""

    def __init__(self, options: SoakOptions, sim: SimulatorChild, redis: Redis, prefix: str) -> None:
        self.options = options
        self.sim = sim
        self.redis = redis
        self.registry = CollectorRegistry()
        self.metrics = IbkrMetrics(self.registry)
        self.gaps = RecordingHistogram(self.metrics.gap_seconds)
        self.resubscribes = RecordingHistogram(self.metrics.resubscribe_seconds)
        self.metrics.gap_seconds = self.gaps  # type: ignore[assignment]  # a recording stand-in, same interface
        self.metrics.resubscribe_seconds = self.resubscribes  # type: ignore[assignment]
        self.ledger = Ledger()
        self.run_id = f"soak-{uuid.uuid4().hex[:8]}"
        pacing = SOAK_SETTINGS.pacing
        self.ingest = self._connection(101, "ingest-ibkr", Pacer(redis, self.metrics, pacing, MARKET_DATA, prefix))
        self.execution = self._connection(201, "execution", Pacer(redis, self.metrics, pacing, MARKET_DATA, prefix))
        stamp = RecordStamp(self.run_id, "sim")
        self.feed = MarketDataFeed(self.ingest, self.ledger.emit, stamp, self.metrics, underlying_ticks="233,225")
        depth = DepthSettings(
            venues=["SPY@ARCA", "QQQ@ISLAND", "IWM@ARCA", "AAPL@ISLAND"], dwell_s=5.0, snapshot_interval_s=1.0
        )
        self.depth = DepthRotator(self.ingest, depth, self.ledger.emit, stamp, self.metrics)
        self.orders = OrderLedger(redis, prefix)
        self.gateway = IbkrOrderGateway(self.execution, Pacer(redis, self.metrics, pacing, ORDERS, prefix))
        self.router = OrderRouter(self.gateway, self.orders, self._publish, self.metrics, self.run_id, "sim")
        self.gateway.attach(self.router)
        self.published: Counter[str] = Counter()

    def _connection(self, client_id: int, role: str, pace: Pacer) -> IbkrConnection:
        endpoint = Endpoint("127.0.0.1", self.sim.port, client_id, role)
        return IbkrConnection(SOAK_SETTINGS, endpoint, self.metrics, pace=pace)

    async def _publish(self, record: Record) -> None:
        self.published[record.type] += 1

    def _on_ack(self, ack: OrderAck) -> None:
        self.ledger.acks[ack.status] += 1

    async def start(self) -> None:
        """Connect both roles, subscribe the market data, start the depth rotation."""
        for conn in (self.ingest, self.execution):
            await conn.start()
            await conn.wait_connected(30.0)
        self.router.register_ack_listener(self._on_ack)
        contracts = await qualify(self.ingest.ib, [underlying_contract(s) for s in UNDERLYINGS], self.ingest.pace)
        await self.feed.subscribe_l1(contracts, "underlying")
        await self.feed.subscribe_tick_by_tick([c for c in contracts if c.symbol == "SPY"])
        await self.feed.subscribe_bars([c for c in contracts if c.symbol == "SPY"])
        await self.depth.start()
        deadline = time.monotonic() + 30.0
        while not set(TRADED) <= set(self.ledger.last_quote):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no quotes for {TRADED} within 30 s of subscribing")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop the rotation, the router's ack dispatcher and both sessions."""
        await self.depth.stop()
        await self.router.close()
        for conn in (self.ingest, self.execution):
            await conn.stop()

    # ------------------------------------------------------------------ faults
    async def faults(self, stop: asyncio.Event) -> None:
        """One fault every ``fault_every_min`` simulated minutes, in the order of ``FAULTS``."""
        if self.options.fault_every_min <= 0:
            return
        every_s = self.options.fault_every_min * 60.0 / self.options.speed
        async with httpx.AsyncClient(base_url=self.sim.control_url, timeout=10.0) as http:
            for kind in itertools.cycle(FAULTS):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(every_s):
                        await stop.wait()
                if stop.is_set():
                    return
                try:
                    await self._fault(http, kind)
                except httpx.HTTPError as exc:
                    self.ledger.crashes.append(f"fault {kind}: the control API failed: {exc!r}")
                    return

    async def _fault(self, http: httpx.AsyncClient, kind: str) -> None:
        seconds = FAULT_SECONDS.get(kind, 0.0)
        if kind == "drop":
            reply = await http.post("/faults/drop")
        elif kind in ("stall", "stall_long"):
            reply = await http.post("/faults/stall", params={"seconds": seconds})
        elif kind == "restart":
            reply = await http.post("/faults/restart", params={"down_seconds": seconds})
        else:
            reply = await http.post("/faults/connectivity_lost", params={"seconds": seconds})
        reply.raise_for_status()
        self.ledger.faults[kind] += 1
        self.ledger.last_fault_at = time.monotonic() + seconds

    # ------------------------------------------------------------------ orders
    async def trader(self, stop: asyncio.Event) -> None:
        """One order action every ``order_every_min`` simulated minutes, in the order of ``ACTIONS``."""
        every_s = self.options.order_every_min * 60.0 / self.options.speed
        for n in itertools.count():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await stop.wait()
            if stop.is_set():
                return
            action = ACTIONS[n % len(ACTIONS)]
            task = asyncio.ensure_future(self._act(n, action))
            done, _ = await asyncio.wait({task}, timeout=_ACTION_WALL_S)
            if not done:
                self.ledger.hung.append(f"{action} #{n} still waiting after {_ACTION_WALL_S:.0f} s: {where(task)}")
                task.cancel()
                continue
            try:
                task.result()
            except OrderRejectedError as exc:
                reason = "not connected" if "not connected" in exc.message else "refused"
                self.ledger.actions[f"{action}: {reason}"] += 1
            except (RedisError, ContractError, ConnectionError) as exc:
                self.ledger.actions[f"{action}: {type(exc).__name__}"] += 1
            except Exception as exc:  # noqa: BLE001 - the soak counts crashes instead of dying on them
                self.ledger.crashes.append(f"order action {action}: {type(exc).__name__}: {exc}")

    def _limit(self, symbol: str, side: Literal["buy", "sell"], offset: float) -> Decimal:
        """A limit ``offset`` (a fraction) through the far side of the latest quote: > 0 marketable, < 0 resting."""
        q = self.ledger.last_quote[symbol]
        bid, ask = q.bid or q.last or 0.0, q.ask or q.last or 0.0
        price = ask * (1 + offset) if side == "buy" else bid * (1 - offset)
        return Decimal(str(round(max(price, 0.01), 2)))

    async def _act(self, n: int, action: str) -> None:
        ledger = self.ledger
        symbol = TRADED[n % len(TRADED)]
        side: Literal["buy", "sell"] = "buy" if (n // len(ACTIONS)) % 2 == 0 else "sell"
        if action == "replay":
            if not ledger.requests:
                return
            request = list(ledger.requests.values())[n % len(ledger.requests)]
            ack = await self.router.submit(request)
            ledger.actions["replayed" if ack.duplicate else "replay placed again (!)"] += 1
            return
        if action == "cancel":
            for order_id in ledger.far_orders:
                order = await self.orders.load(order_id)
                if order.get("status") == "submitted":
                    await self.router.cancel(order_id)
                    ledger.actions["cancel requested"] += 1
                    return
            return
        offset = {"fill": 0.002, "rest_near": -0.0005, "rest_far": -0.1}[action]
        request = OrderRequest(
            signal_id=f"{self.run_id}-{n}",
            symbol=symbol,
            side=side,
            quantity=1 + n % 5,
            limit_price=self._limit(symbol, side, offset),
        )
        ledger.requests[request.signal_id] = request
        ack = await self.router.submit(request)
        ledger.actions[f"{action} placed"] += 1
        if action == "rest_far":
            ledger.far_orders.append(ack.order_id)

    # ------------------------------------------------------------------ the end
    async def settle(self) -> None:
        """Wait until both roles are connected, every subscription is back and data flows again."""
        deadline = time.monotonic() + _SETTLE_WALL_S
        while time.monotonic() < deadline:
            counts = self.sim.stats().get("status", {}).get("subscriptions", {})
            restored = all(counts.get(k, 0) == v for k, v in EXPECTED_SUBSCRIPTIONS.items())
            fresh = self.ledger.last_record_at > self.ledger.last_fault_at
            if restored and fresh and all(c.state == CONNECTED for c in (self.ingest, self.execution)):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # order callbacks in flight reach the ledger

    def client_fills(self) -> str:
        """What ib_insync itself knows: its fills of our orders (the session's day only, after a reconnect)."""
        tokens = {r.token for r in self.ledger.requests.values()}
        ours = [f for f in self.execution.ib.fills() if f.execution.orderRef in tokens]
        applied = sum(1 for f in ours if f.execution.execId)
        return f"{applied} executions of our orders in ib_insync's fills()"

    def counter(self, name: str) -> dict[str, float]:
        """A per-role counter of the connections' metrics."""
        return {role: self.registry.get_sample_value(f"{name}_total", {"role": role}) or 0.0 for role in ROLES}


async def reconcile(
    orders: OrderLedger, requests: Sequence[OrderRequest], sim: dict[str, Any], days: Sequence[date]
) -> tuple[list[str], int, dict[str, dict[str, str]]]:
    """Our ledger against the simulator's final book: problems, orders placed, positions compared.

    Args:
        orders: our order ledger (Redis).
        requests: every request the trader submitted (each signal once).
        sim: the simulator's final stats (orders, executions, positions).
        days: the UTC days the soak's fills may be filed under.
    """
    tokens = {r.token for r in requests}
    sim_orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in sim.get("orders", []):
        sim_orders[o["order_ref"]].append(o)
    sim_execs: dict[str, set[str]] = defaultdict(set)
    for e in sim.get("executions", []):
        sim_execs[e["order_ref"]].add(e["exec_id"])
    problems = [f"the simulator has order {ref!r} that no signal of ours placed" for ref in set(sim_orders) - tokens]
    placed = 0
    net: Counter[str] = Counter()
    for token in sorted(tokens):
        order = await orders.load(await orders.order_for_token(token) or token)
        if order.get("broker_order_id"):
            placed += 1
            net[order.get("symbol", "?")] += (1 if order.get("side") == "buy" else -1) * int(order.get("filled") or 0)
        fills = {f["exec_id"] for day in days for f in await orders.fills_of(order.get("order_id", token), day)}
        problems += order_problems(token, order, fills, sim_orders.get(token, []), sim_execs.get(token, set()))
    held = {p["symbol"]: Decimal(p["quantity"]) for p in sim.get("positions", [])}
    positions = {}
    for symbol in sorted(set(held) | set(net)):
        ours, theirs = Decimal(net.get(symbol, 0)), held.get(symbol, Decimal(0))
        positions[symbol] = {"ledger": str(ours), "simulator": str(theirs)}
        if ours != theirs:
            problems.append(f"position {symbol}: ledger fills net {ours}, simulator account holds {theirs}")
    return problems, placed, positions


def order_problems(
    token: str, order: dict[str, str], fills: set[str], in_sim: list[dict[str, Any]], executions: set[str]
) -> list[str]:
    """How one order of ours disagrees with the simulator (empty when it agrees).

    Args:
        token: the order's idempotency token (its ``orderRef``).
        order: the ledger's hash of the order (empty when never claimed).
        fills: execution ids the ledger applied to it.
        in_sim: the simulator's orders carrying ``token``.
        executions: the simulator's execution ids of those orders.
    """
    if len(in_sim) > 1:
        return [f"{token}: placed {len(in_sim)} times in the simulator"]
    if not order.get("broker_order_id"):
        return [f"{token}: in the simulator ({in_sim[0]['status']}) but not placed per the ledger"] if in_sim else []
    if not in_sim:
        if order.get("status") == "rejected" and order.get("reason", "").startswith("lost:"):
            return []  # sent as the connection broke; the sync found TWS never got it and closed it
        return [f"{token}: placed per the ledger, unknown to the simulator"]
    sim_order, problems = in_sim[0], []
    if Decimal(sim_order["filled"]) != Decimal(order.get("filled") or 0):
        problems.append(f"{token}: ledger filled {order.get('filled')}, simulator filled {sim_order['filled']}")
    if fills != executions:
        problems.append(
            f"{token}: executions missing from the ledger {sorted(executions - fills)}, "
            f"unknown to the simulator {sorted(fills - executions)}"
        )
    wanted = TWS_STATUS.get(sim_order["status"], sim_order["status"])
    if order.get("status") != wanted:
        problems.append(f"{token}: ledger status {order.get('status')!r}, simulator {sim_order['status']!r}")
    return problems


# --------------------------------------------------------------------------- running it
async def run(options: SoakOptions, out: Callable[[str], None] = print) -> SoakReport:
    """Run the soak and return its report (``report.failures`` empty when every invariant held)."""
    wall_started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-ibkr-") as tmp:
        home = options.home or Path(tmp)
        runtime: EmbeddedRuntime | None = None
        redis_url = options.redis_url
        if redis_url is None:
            runtime = embedded_runtime(home / "embedded", with_broker=False)
        sim = SimulatorChild(home, options.start, options.speed, options.tick_ms, UNDERLYINGS, options.seed)
        redis: Redis | None = None
        try:
            if runtime is not None:
                await runtime.start(watch=False)
                redis_url = runtime.redis_url
            await sim.start()
            redis = Redis.from_url(redis_url or "")
            report = await _soak(options, sim, redis, out)
        finally:
            sim.stop()
            if redis is not None:
                await redis.aclose()
            if runtime is not None:
                runtime.stop_processes()
    report.wall_s = time.monotonic() - wall_started
    report.failures = invariants(report, options.max_gap_s)
    return report


async def _soak(options: SoakOptions, sim: SimulatorChild, redis: Redis, out: Callable[[str], None]) -> SoakReport:
    prefix = f"soak:{uuid.uuid4().hex[:8]}:"
    soak = Soak(options, sim, redis, prefix)
    ledger = soak.ledger
    wall_s = options.hours * 3600.0 / options.speed
    out(
        f"soak: {options.hours:g} simulated hours at speed {options.speed:g} ({wall_s / 60:.1f} wall min) from "
        f"{options.start.isoformat()}; a fault every {options.fault_every_min:g} and an order action every "
        f"{options.order_every_min:g} simulated minutes; simulator pid {sim.pid}"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await soak.start()
    window_start = sim.stats().get("sim_now", "")
    tasks = [
        asyncio.ensure_future(soak.faults(stop)),
        asyncio.ensure_future(soak.trader(stop)),
        asyncio.ensure_future(_progress(soak, stop, out)),
    ]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wall_s):
                await stop.wait()
        stop.set()
        for task in tasks:
            try:
                async with asyncio.timeout(20.0):
                    await task
            except TimeoutError:
                ledger.crashes.append(f"{task!r} did not stop within 20 s")
            except Exception as exc:  # noqa: BLE001 - a crashed actor is a finding, not a reason to skip the report
                ledger.crashes.append(f"{type(exc).__name__}: {exc}")
        window_end = sim.stats().get("sim_now", "")
        await soak.settle()
        status = sim.stats().get("status", {})
        client_fills = soak.client_fills()
        connected = {
            role: conn.state == CONNECTED for role, conn in zip(ROLES, (soak.ingest, soak.execution), strict=True)
        }
        data_after = ledger.last_record_at > ledger.last_fault_at
    finally:
        for task in tasks:
            task.cancel()
        await soak.stop()
    requests = list(ledger.requests.values())
    sim_final = sim.stop()  # the simulator writes its final book as it stops
    first = options.start.date() - timedelta(days=1)
    days = [first + timedelta(days=i) for i in range(int(options.hours // 24) + 4)]
    if sim_final.get("final"):
        problems, placed, positions = await reconcile(soak.orders, requests, sim_final, days)
    else:
        problems, placed, positions = ["the simulator did not write its final book"], 0, {}
    statuses = Counter([(await soak.orders.load(r.token)).get("status", "unknown") for r in requests])
    ledger.actions.update({f"ledger {status}": n for status, n in statuses.items()})
    report = SoakReport(
        options={k: str(v) for k, v in asdict(options).items()},
        wall_s=0.0,
        simulated_h=_hours_between(window_start, window_end),
        faults=dict(ledger.faults),
        reconnects=soak.counter("ibkr_reconnects"),
        disconnects=soak.counter("ibkr_disconnects"),
        missed_heartbeats=soak.counter("ibkr_missed_heartbeats"),
        gaps_s=[round(g, 3) for g in soak.gaps.values.get("ingest-ibkr", [])],
        resubscribe_s={role: [round(v, 3) for v in soak.resubscribes.values.get(role, [])] for role in ROLES},
        records=dict(ledger.records),
        actions=dict(ledger.actions),
        acks=dict(ledger.acks),
        connected_at_end=connected,
        subscriptions_at_end={k: int(v) for k, v in status.get("subscriptions", {}).items()},
        data_after_last_fault=data_after,
        orders_placed=placed,
        orders_in_simulator=len(sim_final.get("orders", [])),
        executions=len(sim_final.get("executions", [])),
        sync_problems=problems,
        positions=positions,
        client_fills=client_fills,
        hung_actions=ledger.hung[:20],
        crashes=ledger.crashes[:20],
    )
    return report


def _hours_between(start: str, end: str) -> float:
    """Simulated hours between two of the simulator's ``sim_now`` stamps (0 when one is missing)."""
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 3600.0


async def _progress(soak: Soak, stop: asyncio.Event, out: Callable[[str], None]) -> None:
    """A line per simulated six hours: how far, faults, reconnects, orders."""
    every_s = 6 * 3600.0 / soak.options.speed
    started = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stop.wait()
        if stop.is_set():
            return
        sim_h = (time.monotonic() - started) * soak.options.speed / 3600.0
        out(
            f"  t+{sim_h:5.1f} h: faults {sum(soak.ledger.faults.values())}, reconnects "
            f"{ {k: int(v) for k, v in soak.counter('ibkr_reconnects').items()} }, records "
            f"{sum(soak.ledger.records.values())}, order actions {sum(soak.ledger.actions.values())}, "
            f"crashes {len(soak.ledger.crashes)}"
        )


def _p(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return f"n={len(values)} p50 {percentile(values, 0.5):.2f} s, max {max(values):.2f} s"


def format_report(report: SoakReport) -> str:
    """The report as text."""
    lines = [
        f"simulated {report.simulated_h:.1f} h in {report.wall_s / 60:.1f} wall min",
        f"faults fired: {report.faults}",
        f"reconnects: {report.reconnects}; disconnects: {report.disconnects}",
        f"missed heartbeats: {report.missed_heartbeats}",
        f"data gaps (socket lost → first market data again): {_p(report.gaps_s)}",
        "resubscription time: " + "; ".join(f"{role} {_p(v)}" for role, v in report.resubscribe_s.items()),
        f"records by kind: {report.records}",
        f"order actions: {report.actions}; acks by status: {report.acks}",
        f"at the end: connected {report.connected_at_end}, simulator subscriptions {report.subscriptions_at_end}, "
        f"data after the last fault: {report.data_after_last_fault}",
        f"orders placed {report.orders_placed}, in the simulator {report.orders_in_simulator}, executions "
        f"{report.executions}; positions (ledger vs simulator): {report.positions}",
        f"order sync problems: {len(report.sync_problems)} {report.sync_problems[:5]}",
        f"client view: {report.client_fills}; hung order actions: {report.hung_actions}",
        f"crashes: {report.crashes}",
        "RESULT: " + ("PASS" if report.ok else "FAIL: " + " | ".join(report.failures)),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=SoakOptions.hours, help="simulated hours")
    parser.add_argument("--speed", type=float, default=SoakOptions.speed, help="simulated seconds per wall second")
    parser.add_argument("--start", default=DEFAULT_START.isoformat(), help="simulated start (ISO, aware)")
    parser.add_argument("--seed", type=int, default=SoakOptions.seed)
    parser.add_argument("--fault-every-min", type=float, default=SoakOptions.fault_every_min)
    parser.add_argument("--order-every-min", type=float, default=SoakOptions.order_every_min)
    parser.add_argument("--max-gap-s", type=float, default=SoakOptions.max_gap_s)
    parser.add_argument("--redis-url", help="use this Redis Stack instead of starting the embedded one")
    parser.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--log-level", default="ERROR", help="log level of the client code (logs go to stderr)")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, "console")
    options = SoakOptions(
        hours=args.hours,
        speed=args.speed,
        start=datetime.fromisoformat(args.start),
        seed=args.seed,
        fault_every_min=args.fault_every_min,
        order_every_min=args.order_every_min,
        max_gap_s=args.max_gap_s,
        redis_url=args.redis_url,
    )
    report = asyncio.run(run(options))
    print(format_report(report), flush=True)
    if args.report_json:
        args.report_json.write_text(json.dumps(asdict(report), indent=1, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Record an ib_insync session against the TWS simulator through the proxy, then replay it.

The unmodified ib_insync client runs one deterministic script (connect, qualify SPY, stream
SPY quotes, ask for QQQ's contract details, buy 1 SPY at market) three times: live through
the recording proxy, then twice against the replay server with no simulator running. The
client must see the same data each time, and each replay must send exactly the recorded
bytes (checked by recording the replays through the proxy too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import ib_insync
import pytest

from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.recording import RecordedEvent, read_recording
from quanticity.simulation.tws.recording_proxy import RecordingProxy
from quanticity.simulation.tws.replay import ReplayServer
from quanticity.simulation.tws.server import TwsSimulator
from tests.conftest import IN_SESSION, RunningClock

pytestmark = pytest.mark.integration

START = IN_SESSION
CLIENT_ID = 41
STREAM_S = 2.0  # how long the script watches SPY quotes before its next request

logging.getLogger("ib_insync").setLevel(logging.CRITICAL)  # expected errors (321) are asserted, not logged


@dataclass
class Seen:
    """What the client script observed, without receive times (they differ on every run by nature)."""

    accounts: list[str] = field(default_factory=list)
    spy_con_id: int = 0
    ticks: list[tuple[int, float, float]] = field(default_factory=list)  # SPY ticks before the order's first status
    details: list[tuple[int, str, str, float]] = field(default_factory=list)
    statuses: list[tuple[str, float, float, float]] = field(default_factory=list)
    fills: list[tuple[str, float, float, str]] = field(default_factory=list)
    errors: list[tuple[int, int, str]] = field(default_factory=list)


async def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def client_script(port: int, details_symbol: str = "QQQ") -> Seen:
    """The deterministic client: every request follows from what was received before it."""
    seen = Seen()
    ib = ib_insync.IB()
    ib.errorEvent += lambda req_id, code, text, contract: seen.errors.append((req_id, code, text))
    await ib.connectAsync("127.0.0.1", port, clientId=CLIENT_ID, timeout=10)
    try:
        seen.accounts = ib.managedAccounts()
        (spy,) = await ib.qualifyContractsAsync(ib_insync.Stock("SPY", "SMART", "USD"))
        seen.spy_con_id = spy.conId
        ticker = ib.reqMktData(spy)
        streamed: list[tuple[int, float, float]] = []
        # ticker.ticks holds the ticks of the current socket read; updateEvent fires at its end.
        ticker.updateEvent += lambda t: streamed.extend((k.tickType, k.price, k.size) for k in t.ticks)
        await asyncio.sleep(STREAM_S)
        details = await ib.reqContractDetailsAsync(ib_insync.Stock(details_symbol, "SMART", "USD"))
        seen.details = [(d.contract.conId, d.contract.symbol, d.longName, d.minTick) for d in details]

        def on_status(trade: ib_insync.Trade) -> None:
            # Runs while the status message is decoded: the ticks before it in the stream are
            # exactly those already collected plus those of the current read so far.
            if not seen.statuses:
                seen.ticks = streamed + [(k.tickType, k.price, k.size) for k in ticker.ticks]
            s = trade.orderStatus
            seen.statuses.append((s.status, s.filled, s.remaining, s.avgFillPrice))

        trade = ib.placeOrder(spy, ib_insync.MarketOrder("BUY", 1))
        trade.statusEvent += on_status
        await _until(lambda: trade.isDone() and trade.fills, 10, "the SPY order to fill")
        await asyncio.sleep(0.5)  # the commission report and later messages arrive
        seen.fills = [
            (f.execution.execId, f.execution.price, f.execution.shares, f.execution.side) for f in trade.fills
        ]
    finally:
        ib.disconnect()
    await asyncio.sleep(0.2)  # the server side sees the close
    return seen


def _conversation(path: Path) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """What went over the wire on connection 1 (handshakes, frames, who closed), without times."""
    events: list[RecordedEvent] = [e for e in read_recording(path).events if e.conn == 1]
    return [(e.kind, e.direction, e.fields) for e in events if e.kind != "open"]


async def _through_proxy(upstream_port: int, out: Path, details_symbol: str = "QQQ") -> Seen:
    async with RecordingProxy("127.0.0.1", upstream_port, out) as proxy:
        seen = await client_script(proxy.port, details_symbol)
    return seen


async def test_a_recorded_session_replays_the_same_data_every_time(tmp_path: Path) -> None:
    market = SimulatedMarket(7, START - timedelta(days=1), ["SPY", "QQQ", "IWM"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.1), RunningClock(START))
    sim_port = await sim.start("127.0.0.1", 0)
    try:
        recorded = await _through_proxy(sim_port, tmp_path / "live.ibkr")
    finally:
        await sim.stop()  # the replays below cannot reach it

    assert recorded.accounts == ["DU1234567"] and recorded.spy_con_id > 0
    assert len(recorded.ticks) >= 10, "a few seconds of SPY quotes were recorded"
    assert [d[1] for d in recorded.details] == ["QQQ"]
    assert recorded.statuses and recorded.statuses[-1][0] == "Filled" and len(recorded.fills) == 1
    live = _conversation(tmp_path / "live.ibkr")
    assert live[-1] == ("close", "c2s", ())

    async with ReplayServer(tmp_path / "live.ibkr", speed=0) as server:
        first = await _through_proxy(server.port, tmp_path / "replay1.ibkr")
        second = await _through_proxy(server.port, tmp_path / "replay2.ibkr")

    assert first == recorded
    assert second == recorded
    # Byte for byte: both replays carried exactly the recorded conversation.
    assert _conversation(tmp_path / "replay1.ibkr") == live
    assert _conversation(tmp_path / "replay2.ibkr") == live
    assert server.divergences == []
    assert [(r.connection, r.finished, r.matched == r.expected) for r in server.reports] == [(1, True, True)] * 2


async def test_a_diverging_request_is_reported_and_the_replay_goes_on(tmp_path: Path) -> None:
    market = SimulatedMarket(7, START - timedelta(days=1), ["SPY", "QQQ", "IWM"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.1), RunningClock(START))
    sim_port = await sim.start("127.0.0.1", 0)
    try:
        recorded = await _through_proxy(sim_port, tmp_path / "live.ibkr")
    finally:
        await sim.stop()

    async with ReplayServer(tmp_path / "live.ibkr", speed=0) as server:
        diverged = await client_script(server.port, details_symbol="IWM")
    (divergence,) = server.divergences
    assert divergence.expected is not None and "QQQ" in divergence.expected and "IWM" in divergence.received
    assert divergence.expected[0] == "9" and divergence.line > 1
    (req_id, code, text) = next(e for e in diverged.errors if e[1] == 321)
    assert "expected reqContractDetails" in text and "'QQQ'" in text and "'IWM'" in text
    assert diverged.details == []  # the error ended the request
    # The rest of the script matched: same quotes, same order story.
    assert diverged.ticks == recorded.ticks and diverged.statuses == recorded.statuses
    assert diverged.fills == recorded.fills
    assert server.reports[0].finished

    async with ReplayServer(tmp_path / "live.ibkr", speed=0, on_divergence="stop") as strict:
        ib = ib_insync.IB()
        errors: list[int] = []
        ib.errorEvent += lambda req_id, code, text, contract: errors.append(code)
        await ib.connectAsync("127.0.0.1", strict.port, clientId=CLIENT_ID, timeout=10)
        try:
            assert await ib.qualifyContractsAsync(ib_insync.Stock("IWM", "SMART", "USD")) == []
            await _until(lambda: not ib.isConnected(), 5, "the replay to close the connection")
        finally:
            ib.disconnect()
    assert 321 in errors
    assert len(strict.divergences) == 1 and not strict.reports[0].finished

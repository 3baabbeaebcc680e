"""Faults and protocol robustness of the TWS simulator: stalls, lost connectivity, the control server,
and malformed or unknown client messages on a raw socket."""

from __future__ import annotations

import asyncio
import struct
import time

import aiohttp
import ib_insync

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.tws import TwsSimConfig, TwsSimulator
from quanticity.simulation.tws.protocol import frame, split_payload
from tests.integration.test_tws_simulator import (  # the fixtures are shared: pytest finds them by name here
    START,
    Connect,
    Errors,
    RunningClock,
    connect,
    market,
    qualified,
    sim,
    start_sim,
    wait_until,
)

__all__ = ["connect", "market", "sim", "start_sim"]  # re-exported fixtures


async def test_stall_holds_replies_until_it_ends(sim: TwsSimulator, connect: Connect) -> None:
    ib = await connect(sim)
    assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
    sim.stall(1.0)
    t0 = time.monotonic()
    reply = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 5)
    assert reply is not None and time.monotonic() - t0 >= 0.8
    assert ib.isConnected()


async def test_connectivity_lost_sends_1100_then_1102_and_pauses_data(sim: TwsSimulator, connect: Connect) -> None:
    ib = await connect(sim)
    errors = Errors(ib)
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy)
    await wait_until(lambda: ticker.bid > 0, what="quotes")
    lost = asyncio.create_task(sim.connectivity_lost(1.5))
    await wait_until(lambda: 1100 in errors.codes(), what="error 1100")
    await asyncio.sleep(0.4)
    ticker.ticks.clear()
    updates: list[int] = []
    ticker.updateEvent += lambda t: updates.append(len(t.ticks))
    await asyncio.sleep(0.6)
    assert updates == []  # no data while connectivity is lost
    await lost
    await wait_until(lambda: 1102 in errors.codes(), what="error 1102")
    await wait_until(lambda: updates, 3.0, "data to resume")


async def test_control_server_drops_and_reports(market: SimulatedMarket, connect: Connect) -> None:
    sim = TwsSimulator(market, TwsSimConfig(), RunningClock(START))
    await sim.start(control_port=0)
    try:
        ib = await connect(sim, client_id=41)
        base = f"http://127.0.0.1:{sim.control_port}"
        async with aiohttp.ClientSession() as http:
            status = await (await http.get(f"{base}/status")).json()
            assert status["clients"] == [41] and status["net_liquidation"] == 1_000_000
            dropped = await (await http.post(f"{base}/faults/drop?client_id=41")).json()
            assert dropped == {"dropped": 1}
            await wait_until(lambda: not ib.isConnected(), what="the drop")
            bad = await http.post(f"{base}/faults/stall?seconds=x")
            assert bad.status == 400
    finally:
        await sim.stop()


# ---------------------------------------------------------------------------- raw protocol
class RawClient:
    """A hand-rolled API client: handshake, then frames in and out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, client_id: int) -> tuple[RawClient, list[list[str]]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = b"v157..176"
        writer.write(b"API\0" + struct.pack(">I", len(greeting)) + greeting)
        client = cls(reader, writer)
        version = await client.read()
        assert version[0] == "176" and len(version) == 2
        client.send([71, 2, client_id, ""])
        return client, [await client.read() for _ in range(5)]  # 15, 9 and three farm notices

    def send(self, fields: list[object]) -> None:
        self.writer.write(frame(fields))  # type: ignore[arg-type]

    async def read(self) -> list[str]:
        (size,) = struct.unpack(">I", await asyncio.wait_for(self.reader.readexactly(4), 5))
        return split_payload(await self.reader.readexactly(size))

    async def until(self, msg_id: str) -> list[str]:
        while True:
            fields = await self.read()
            if fields[0] == msg_id:
                return fields


async def test_connect_sequence_and_exact_handshake_arities(sim: TwsSimulator) -> None:
    client, opening = await RawClient.connect(sim.port, 61)
    assert opening[:2] == [["15", "1", "DU1234567"], ["9", "1", "1"]]
    assert [f[3] for f in opening[2:]] == ["2104", "2106", "2158"] and all(len(f) == 6 for f in opening[2:])
    client.writer.close()


async def test_malformed_and_unknown_messages_are_answered_and_survived(sim: TwsSimulator) -> None:
    client, _ = await RawClient.connect(sim.port, 62)
    client.send([1, 11, "not-a-number"])
    error = await client.until("4")
    assert error[3] == "320" and error[2] == "-1"
    client.send([9, 8, 77, 0, "SPY", "STK", "", "abc"])  # strike is not a number
    error = await client.until("4")
    assert (error[2], error[3]) == ("77", "320")
    client.send([96, 78, 0])  # reqHistoricalTicks: not simulated; the error carries its reqId
    error = await client.until("4")
    assert (error[2], error[3]) == ("78", "321")
    client.send([49, 1])
    now = await client.until("49")
    assert int(now[2]) > 1_700_000_000
    client.writer.close()

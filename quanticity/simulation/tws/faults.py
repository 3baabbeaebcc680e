"""Fault injection for the TWS simulator, and its loopback control server.

The fault *state* lives here (is the simulator stalled, is data paused by a lost
connectivity); the operations themselves are ``TwsSimulator`` methods because they
touch sockets and the listener. The control server exposes those methods over HTTP on
loopback for soak and chaos scripts::

    POST /faults/drop?client_id=7          close sockets abruptly (all clients without client_id)
    POST /faults/stall?seconds=5           stop sending and reading, keep sockets open
    POST /faults/restart?down_seconds=3    close listener and sockets, reopen on the same port
    POST /faults/connectivity_lost?seconds=10   1100 to every client, data stops, then 1102
    GET  /status                           connected client ids and subscription counts
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

__all__ = ["ControlTarget", "FaultState", "start_control_server"]


@dataclass(slots=True)
class FaultState:
    """What the injected faults currently do to the simulator.

    Attributes:
        stalled_until: monotonic time until which nothing is sent or read.
        connectivity_lost: market data is paused (between 1100 and 1102).
        pacing_drops: message id → how many of the next such client messages are dropped
            as over the message rate (error 100, never answered), whatever the real rate.
    """

    stalled_until: float = 0.0
    connectivity_lost: bool = False
    pacing_drops: dict[int, int] = field(default_factory=dict)
    _resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def drop_next(self, msg_id: int, count: int = 1) -> None:
        """Drop the next ``count`` client messages with id ``msg_id`` as TWS drops one over its rate."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self.pacing_drops[msg_id] = self.pacing_drops.get(msg_id, 0) + count

    def take_drop(self, fields: list[str]) -> bool:
        """True (and one fewer to drop) when this client message is one to drop."""
        if not self.pacing_drops or not fields or not fields[0].isdigit():
            return False
        msg_id = int(fields[0])
        left = self.pacing_drops.get(msg_id, 0)
        if left <= 0:
            return False
        if left == 1:
            del self.pacing_drops[msg_id]
        else:
            self.pacing_drops[msg_id] = left - 1
        return True

    @property
    def stalled(self) -> bool:
        """True while a stall is in force."""
        return time.monotonic() < self.stalled_until

    @property
    def data_paused(self) -> bool:
        """True while streaming data must not flow."""
        return self.stalled or self.connectivity_lost

    def stall(self, seconds: float) -> None:
        """Stall from now for ``seconds``."""
        self.stalled_until = max(self.stalled_until, time.monotonic() + seconds)
        self._resumed.clear()

    def resume(self) -> None:
        """End the stall (called when it expires)."""
        self.stalled_until = 0.0
        self._resumed.set()

    async def wait_running(self) -> None:
        """Return at once unless stalled; otherwise when the stall ends."""
        while self.stalled:
            self._resumed.clear()
            try:
                async with asyncio.timeout(max(self.stalled_until - time.monotonic(), 0.01)):
                    await self._resumed.wait()
            except TimeoutError:
                continue


class ControlTarget(Protocol):
    """The simulator operations the control server exposes."""

    def drop_connections(self, client_id: int | None = None) -> int: ...

    def stall(self, seconds: float) -> None: ...

    async def restart(self, down_seconds: float) -> None: ...

    async def connectivity_lost(self, seconds: float) -> None: ...

    def status(self) -> dict[str, object]: ...


def _number(request: web.Request, name: str, default: float | None = None) -> float:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing query parameter {name}")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise web.HTTPBadRequest(text=f"{name} must not be negative")
    return value


def _app(target: ControlTarget, background: Callable[[Coroutine[Any, Any, None]], None]) -> web.Application:
    async def drop(request: web.Request) -> web.Response:
        raw = request.query.get("client_id")
        try:
            client_id = int(raw) if raw is not None else None
        except ValueError:
            raise web.HTTPBadRequest(text=f"client_id must be an integer, got {raw!r}") from None
        return web.json_response({"dropped": target.drop_connections(client_id)})

    async def stall(request: web.Request) -> web.Response:
        seconds = _number(request, "seconds")
        target.stall(seconds)
        return web.json_response({"stalled_s": seconds})

    async def restart(request: web.Request) -> web.Response:
        down = _number(request, "down_seconds", 1.0)
        background(target.restart(down))
        return web.json_response({"restarting_down_s": down})

    async def lost(request: web.Request) -> web.Response:
        seconds = _number(request, "seconds")
        background(target.connectivity_lost(seconds))
        return web.json_response({"connectivity_lost_s": seconds})

    async def status(_: web.Request) -> web.Response:
        return web.json_response(target.status())

    app = web.Application()
    app.router.add_post("/faults/drop", drop)
    app.router.add_post("/faults/stall", stall)
    app.router.add_post("/faults/restart", restart)
    app.router.add_post("/faults/connectivity_lost", lost)
    app.router.add_get("/status", status)
    return app


async def start_control_server(
    target: ControlTarget, port: int, background: Callable[[Coroutine[Any, Any, None]], None], host: str = "127.0.0.1"
) -> web.AppRunner:
    """Serve the control API on ``host:port`` (loopback by default); ``await runner.cleanup()`` stops it."""
    runner = web.AppRunner(_app(target, background), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

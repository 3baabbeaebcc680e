"""The recording proxy: forwards TWS API connections upstream and records every frame to a ``.ibkr`` file.

The file format and its reader are in :mod:`quanticity.simulation.tws.recording`; the
deterministic replay is :mod:`quanticity.simulation.tws.replay`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quanticity.simulation.tws.recording import (
    C2S,
    READ_CHUNK,
    S2C,
    Direction,
    FrameCutter,
    RecordedEvent,
    RecordingWriteError,
    RecordingWriter,
)

log = logging.getLogger(__name__)


class RecordingProxy:
    """Forwards TWS API connections to an upstream TWS and records every frame to a ``.ibkr`` file.

    Args:
        upstream_host, upstream_port: the TWS, IB Gateway or ``TwsSimulator`` to forward to.
        out: the recording file (gzip when its name ends in ``.gz``), created by ``start``.
        overwrite: replace an existing ``out`` instead of refusing.
        connect_timeout_s: how long a client connection waits for its upstream connection.

    If the file cannot be written any more (full disk), every connection is closed, new
    ones are refused, and ``failure`` / ``wait_failed`` report the error: a recorder that
    silently stopped recording would be worse than none.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        out: Path | str,
        *,
        overwrite: bool = False,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.out = Path(out)
        self.overwrite = overwrite
        self.connect_timeout_s = connect_timeout_s
        self.port = 0
        self.connections = 0
        self.failure: RecordingWriteError | None = None
        self._failed = asyncio.Event()
        self._writer: RecordingWriter | None = None
        self._records_closed = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def records(self) -> int:
        """Events written so far (header excluded)."""
        return self._writer.records if self._writer is not None else self._records_closed

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Create the recording and listen on ``host:port`` (0: a free port); returns the port.

        Raises:
            RecordingWriteError: the recording cannot be created.
            OSError: the port cannot be bound.
        """
        self._writer = RecordingWriter(
            self.out, upstream=f"{self.upstream[0]}:{self.upstream[1]}", overwrite=self.overwrite
        )
        try:
            self._server = await asyncio.start_server(self._on_connect, host, port)
        except OSError:
            self._writer.close()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("recording %s:%d -> %s:%d into %s", host, self.port, *self.upstream, self.out)
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every connection (recording their close) and the file."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self._records_closed = writer.records
            writer.close()

    async def wait_failed(self) -> RecordingWriteError:
        """Wait until writing the recording fails; returns the error."""
        await self._failed.wait()
        assert self.failure is not None  # set together with the event
        return self.failure

    async def __aenter__(self) -> RecordingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _record(self, events: Sequence[RecordedEvent]) -> None:
        if self._writer is None:
            raise RecordingWriteError(self.out, "the recorder is stopped")
        self._writer.write(events)

    def _fail(self, exc: RecordingWriteError) -> None:
        if self.failure is None:
            self.failure = exc
            self._failed.set()
            log.warning("recording stopped, closing every connection: %s", exc)
            for task in list(self._tasks):
                if task is not asyncio.current_task():
                    task.cancel()

    async def _on_connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection callback always runs in a task
        self._tasks.add(task)
        try:
            await self._relay(client_reader, client_writer)
        finally:
            self._tasks.discard(task)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        peer = client_writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if self.failure is not None:
            log.warning("refusing the connection from %s: the recording failed (%s)", where, self.failure.reason)
            client_writer.close()
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, TimeoutError) as exc:
            log.warning("client %s: upstream TWS %s:%d unreachable (%r); closing it", where, *self.upstream, exc)
            client_writer.close()
            return
        except asyncio.CancelledError:  # stopped while connecting upstream
            client_writer.close()
            raise
        self.connections += 1
        try:
            await self._record_connection(
                self.connections, where, (client_reader, client_writer), (up_reader, up_writer)
            )
        except RecordingWriteError as exc:
            self._fail(exc)
        finally:
            for writer in (client_writer, up_writer):
                if self.failure is not None:
                    writer.transport.abort()
                else:
                    writer.close()

    async def _record_connection(
        self,
        conn: int,
        where: str,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        """Pump both directions until one side closes, recording the open, every frame and the close."""
        started = time.monotonic()
        self._record([RecordedEvent(conn, 0.0, "open", note=f"{where} {datetime.now(UTC).isoformat()}")])
        pumps = {
            asyncio.create_task(self._pump(conn, started, C2S, client[0], upstream[1])): C2S,
            asyncio.create_task(self._pump(conn, started, S2C, upstream[0], client[1])): S2C,
        }
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if self.failure is None:
                try:
                    self._record([RecordedEvent(conn, time.monotonic() - started, "close", note="recorder stopped")])
                except RecordingWriteError as exc:
                    log.warning("connection %d: its close is not recorded: %s", conn, exc)
            raise
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        ended = min(done, key=lambda p: pumps[p])  # both at once: the client's side first
        by, note = ended.result()  # a RecordingWriteError propagates from here
        self._record([RecordedEvent(conn, time.monotonic() - started, "close", by, note=note)])
        log.info("connection %d from %s closed by the %s", conn, where, "client" if by == C2S else "server")

    async def _pump(
        self,
        conn: int,
        started: float,
        direction: Direction,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> tuple[Direction, str]:
        """Record and forward one direction until a side closes; returns (the stream that ended, why)."""
        other: Direction = S2C if direction == C2S else C2S
        cutter = FrameCutter(greeting=direction == C2S)
        handshake = True
        while True:
            try:
                data = await reader.read(READ_CHUNK)
            except ConnectionError as exc:
                return direction, f"reset: {exc}"
            if not data:
                if cutter.pending:
                    log.warning(
                        "connection %d: %d bytes of an unfinished %s frame at close were forwarded, not recorded",
                        conn,
                        cutter.pending,
                        direction,
                    )
                return direction, ""
            t = time.monotonic() - started
            try:
                wires = cutter.feed(data)
            except ConnectionError as exc:
                log.warning("connection %d: %s stream is not the TWS protocol: %s; closing", conn, direction, exc)
                return direction, f"protocol: {exc}"
            events: list[RecordedEvent] = []
            for wire in wires:
                events.append(RecordedEvent.from_wire(conn, t, "handshake" if handshake else "frame", direction, wire))
                handshake = False
            self._record(events)  # before forwarding: what the peer saw is always in the file
            try:
                writer.write(data)
                await writer.drain()
            except ConnectionError as exc:
                return other, f"reset: {exc}"


async def until_terminated(failure: Awaitable[BaseException] | None = None) -> None:
    """Wait for SIGTERM (SIGINT cancels through ``asyncio.run``), or raise what ``failure`` returns first."""
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)  # POSIX, as every platform the project supports
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(terminated.wait())]
    failed = asyncio.ensure_future(failure) if failure is not None else None
    if failed is not None:
        waits.append(failed)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        loop.remove_signal_handler(signal.SIGTERM)
    if failed is not None and failed.done() and not failed.cancelled():
        raise failed.result()


async def serve_recorder(proxy: RecordingProxy, host: str = "127.0.0.1", port: int = 7498) -> None:
    """Run ``proxy`` until SIGTERM or cancellation (the CLI entry point); the file is closed cleanly either way.

    Raises:
        RecordingWriteError: the recording cannot be created, or writing it failed.
        OSError: the port cannot be bound.
    """
    await proxy.start(host, port)
    try:
        await until_terminated(proxy.wait_failed())
    finally:
        await proxy.stop()

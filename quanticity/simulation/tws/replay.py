"""Replay a ``.ibkr`` recording deterministically, without any TWS.

``ReplayServer`` answers the greeting with the recorded server version and time, sends the
recorded server frames and checks every client frame against the recorded one; a client
message that diverges gets error 321 naming the expected and the received message. The
file format is :mod:`quanticity.simulation.tws.recording`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.protocol import MAX_FRAME, frame, negotiate_version, split_payload
from quanticity.simulation.tws.recording import (
    API_PREFIX,
    REQUEST_NAMES,
    S2C,
    ConnectionScript,
    OnDivergence,
    RecordedEvent,
    Recording,
    RecordingFormatError,
    describe_fields,
    message_id,
    read_recording,
)
from quanticity.simulation.tws.recording_proxy import until_terminated

log = logging.getLogger(__name__)


def differing_fields(
    expected: Sequence[str], received: Sequence[str], lenient: Mapping[int, Iterable[int]] | None = None
) -> tuple[int, ...]:
    """Field positions where ``received`` differs from ``expected`` (empty: they match).

    Args:
        expected, received: two client messages' fields (field 0 the message id).
        lenient: message id -> positions allowed to differ. The message id itself and the
            field count must always match; a length difference reports every position past
            the shorter message.
    """
    msg_id = message_id(expected)
    allowed: frozenset[int] = frozenset()
    if lenient and msg_id is not None and expected[:1] == received[:1]:
        allowed = frozenset(lenient.get(msg_id, ()))
    longest = max(len(expected), len(received))
    return tuple(
        i
        for i in range(longest)
        if (i >= len(expected) or i >= len(received) or expected[i] != received[i]) and (i == 0 or i not in allowed)
    )


@dataclass(frozen=True, slots=True)
class Divergence:
    """A client message that is not the one recorded at that point.

    Attributes:
        connection: the recorded connection being replayed.
        line: the recording line of the expected message (0: none was expected any more).
        expected: the recorded message's fields (None beyond the end of the recording).
        received: what the client sent.
        positions: the differing field positions.
    """

    connection: int
    line: int
    expected: tuple[str, ...] | None
    received: tuple[str, ...]
    positions: tuple[int, ...]

    def describe(self) -> str:
        """One line naming the expected and the received message."""
        if self.expected is None:
            return f"received {describe_fields(self.received)} after the end of recorded connection {self.connection}"
        if self.expected[:1] == self.received[:1]:
            diffs = ", ".join(
                f"field {i}: expected {_at(self.expected, i)!r}, received {_at(self.received, i)!r}"
                for i in self.positions[:6]
            )
            more = f" and {len(self.positions) - 6} more" if len(self.positions) > 6 else ""
            return f"expected {describe_fields(self.expected)} (recording line {self.line}); {diffs}{more}"
        expected, received = describe_fields(self.expected), describe_fields(self.received)
        return f"expected {expected} (recording line {self.line}), received {received}"


def _at(fields: Sequence[str], i: int) -> str | None:
    return fields[i] if i < len(fields) else None


@dataclass(slots=True)
class ReplayReport:
    """How one client connection's replay went.

    Attributes:
        connection: the recorded connection it replayed.
        expected: client messages the script expects.
        matched: client messages that matched (or stood in for the recorded one after a divergence).
        divergences: every divergence, in order.
        finished: the whole script was played.
        client_left_early: the client closed before the script's end.
    """

    connection: int
    expected: int
    matched: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    finished: bool = False
    client_left_early: bool = False


class ReplayServer:
    """Serves a ``.ibkr`` recording to TWS API clients, without any TWS.

    The k-th client connection replays the recording's connection ``k mod n`` (n replayable
    connections, in recorded order). Each one gets the recorded server version and time in
    reply to its greeting; then, in recorded order, the server frames recorded before the
    next client frame are sent, and the next client frame is read and compared with the
    recorded one: message id and every field must match (``lenient_fields`` names the
    exceptions). On a divergence the server logs it, sends error 321 naming the expected
    and the received message (to the received message's request id, so that the waiting
    request ends), and either goes on with the received message standing in for the
    recorded one (``continue``) or closes the connection (``stop``). A client greeting that
    differs from the recorded one is a divergence too; the replay goes on as long as the
    client accepts the recorded server version. When the recorded server closed the
    connection, so does the replay; otherwise it waits for the client to close, reporting
    any further client message as a divergence. With ``speed=0`` frames go out as fast as
    possible; otherwise at the recorded offsets divided by ``speed``, measured from the last
    client message matched. What is sent never depends on timing, so the same client code
    sees the same bytes on every replay.

    Args:
        recording: a parsed recording or the path of a ``.ibkr`` file.
        speed: 1.0 the recorded pace, 2.0 twice as fast, 0 as fast as possible.
        on_divergence: ``continue`` or ``stop``.
        lenient_fields: message id -> field positions allowed to differ (default: none).
        allow_truncated: when reading a path: accept a cut-off last record.

    Raises:
        RecordingFormatError: the file does not parse or holds no replayable connection.
        ValueError: a negative or non-finite ``speed``.
    """

    def __init__(
        self,
        recording: Recording | Path | str,
        *,
        speed: float = 1.0,
        on_divergence: OnDivergence = "continue",
        lenient_fields: Mapping[int, Iterable[int]] | None = None,
        allow_truncated: bool = False,
    ) -> None:
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, got {speed}")
        self.recording = (
            recording
            if isinstance(recording, Recording)
            else read_recording(recording, allow_truncated=allow_truncated)
        )
        self.scripts = self.recording.connections()
        if not self.scripts:
            raise RecordingFormatError(self.recording.path, 0, "no connection with a complete handshake to replay")
        self.speed = speed
        self.on_divergence = on_divergence
        self.lenient = {k: frozenset(v) for k, v in (lenient_fields or {}).items()}
        self.port = 0
        self.reports: list[ReplayReport] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def divergences(self) -> list[Divergence]:
        """Every divergence of every connection so far."""
        return [d for report in self.reports for d in report.divergences]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: a free port); returns the port."""
        self._server = await asyncio.start_server(self._on_connect, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("replaying %s on %s:%d", self.recording.path, host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection callback always runs in a task
        self._tasks.add(task)
        script = self.scripts[len(self.reports) % len(self.scripts)]
        report = ReplayReport(script.conn, script.client_frames)
        self.reports.append(report)
        try:
            await self._play(script, report, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            report.client_left_early = not report.finished
            log.info(
                "replay of connection %d: the client left (%s) after %d of %d messages",
                script.conn,
                type(exc).__name__,
                report.matched,
                report.expected,
            )
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _play(
        self, script: ConnectionScript, report: ReplayReport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        if not await self._greet(script, report, reader, writer):
            return
        anchor = (loop.time(), script.greeting.t)  # (wall time, recorded offset) of the last client message
        for event in script.events:
            if event.kind == "close":
                if event.direction == S2C:
                    await writer.drain()
                    report.finished = True
                    log.info("replay of connection %d: the recorded server closed the connection", script.conn)
                    return
                break
            if event.direction == S2C:
                await self._send(event, anchor, writer)
                continue
            wire = await _read_frame(reader)
            if wire is None:
                report.client_left_early = True
                log.info(
                    "replay of connection %d: the client closed after %d of %d messages",
                    script.conn,
                    report.matched,
                    report.expected,
                )
                return
            if wire != event.wire() and not await self._compare(script, report, event, wire, writer):
                return
            report.matched += 1
            anchor = (loop.time(), event.t)
        report.finished = True
        while (wire := await _read_frame(reader)) is not None:
            received = tuple(split_payload(wire[4:]))
            divergence = Divergence(script.conn, 0, None, received, tuple(range(len(received))))
            if not await self._diverged(report, divergence, writer):
                return

    async def _send(self, event: RecordedEvent, anchor: tuple[float, float], writer: asyncio.StreamWriter) -> None:
        """Send a recorded server frame, at its recorded offset from ``anchor`` divided by the speed."""
        if self.speed > 0:
            loop = asyncio.get_running_loop()
            delay = anchor[0] + (event.t - anchor[1]) / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        writer.write(event.wire())
        await writer.drain()

    async def _greet(
        self, script: ConnectionScript, report: ReplayReport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read the client's greeting and answer with the recorded one; False when the client cannot take it."""
        prefix = await reader.readexactly(len(API_PREFIX))
        if prefix != API_PREFIX:
            log.warning("replay: connection without the API prefix (got %r); closing it", prefix)
            return False
        wire = await _read_frame(reader)
        if wire is None:
            return False
        greeting = wire[4:].decode("utf-8", errors="backslashreplace")
        recorded = script.welcome.fields[0] if script.welcome.fields else ""
        if prefix + wire != script.greeting.wire():
            expected = script.greeting.fields
            report.divergences.append(Divergence(script.conn, script.greeting.line, expected, (greeting,), (0,)))
            log.warning(
                "replay of connection %d: client greeting %r differs from the recorded %r",
                script.conn,
                greeting,
                expected[0] if expected else "",
            )
            try:
                compatible = str(negotiate_version(greeting, int(recorded))) == recorded
            except (SimulationRequestError, ValueError) as exc:
                log.warning("replay of connection %d: %s; closing", script.conn, exc)
                return False
            if not compatible:
                log.warning(
                    "replay of connection %d: the client does not accept the recorded server version %s; closing",
                    script.conn,
                    recorded,
                )
                return False
        writer.write(script.welcome.wire())
        await writer.drain()
        return True

    async def _compare(
        self,
        script: ConnectionScript,
        report: ReplayReport,
        expected: RecordedEvent,
        wire: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Compare a client frame with the recorded one; False when the connection must end."""
        received = tuple(split_payload(wire[4:]))
        positions = differing_fields(expected.fields, received, self.lenient)
        if not positions:
            return True
        return await self._diverged(
            report, Divergence(script.conn, expected.line, expected.fields, received, positions), writer
        )

    async def _diverged(self, report: ReplayReport, divergence: Divergence, writer: asyncio.StreamWriter) -> bool:
        report.divergences.append(divergence)
        text = divergence.describe()
        log.warning("replay %s connection %d: divergence: %s", self.recording.path, divergence.connection, text)
        msg_id = message_id(divergence.received)
        position = REQUEST_NAMES.get(msg_id, ("", 0))[1] if msg_id is not None else 0
        req_field = divergence.received[position] if 0 < position < len(divergence.received) else ""
        req_id = int(req_field) if req_field.lstrip("-").isdigit() else -1
        cause = f"Error validating request.-'{msg_id}' : cause - replay divergence: {text}"
        writer.write(frame(m.error(req_id, 321, cause)))
        await writer.drain()
        return self.on_divergence == "continue"


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next length-prefixed frame with its prefix; None on a clean end of stream."""
    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
    return header + await reader.readexactly(size)


async def serve_replay(server: ReplayServer, host: str = "127.0.0.1", port: int = 7497) -> None:
    """Run ``server`` until SIGTERM or cancellation (the CLI entry point).

    Raises:
        OSError: the port cannot be bound.
    """
    await server.start(host, port)
    try:
        await until_terminated()
    finally:
        await server.stop()

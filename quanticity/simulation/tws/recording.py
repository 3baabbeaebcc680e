"""Record a TWS API session's message stream to a ``.ibkr`` file and replay it deterministically.

``RecordingProxy`` listens on loopback and gives every client connection its own connection
to an upstream TWS (a real one, IB Gateway, or ``TwsSimulator``). Bytes pass both ways
unchanged; every frame is appended to the ``.ibkr`` file as it passes, recorded before it
is forwarded and flushed to the OS per chunk read. A killed recorder therefore leaves a
plain file complete up to the last chunk (at worst a cut-off last line), and a ``.gz``
file readable up to it but without its gzip trailer; ``read_recording(...,
allow_truncated=True)`` (``--allow-truncated``) replays either. ``ReplayServer`` then
plays the file back without any TWS: it answers the greeting with the recorded server
version and time, sends the recorded server frames and checks every client frame against
the recorded one. The same client code therefore sees the same bytes on every replay.

File format, version 1: UTF-8 JSON lines, gzip-compressed when the name ends in ``.gz``
(the reader checks the gzip magic, not the name)::

    {"format":"quanticity.ibkr","version":1,"created":"2026-03-03T20:30:00+00:00","upstream":"127.0.0.1:7497"}
    {"c":1,"t":0.0,"k":"open","note":"127.0.0.1:50312 2026-03-03T20:30:00.002+00:00"}
    {"c":1,"t":0.0011,"k":"handshake","d":"c2s","f":["v157..176"]}
    {"c":1,"t":0.0032,"k":"handshake","d":"s2c","f":["176","20260303 15:30:00 US/Eastern"]}
    {"c":1,"t":0.0035,"k":"frame","d":"c2s","f":["71","2","41",""]}
    {"c":1,"t":9.8721,"k":"close","d":"c2s"}

Line 1 is the header. Every other line is one event: ``c`` the connection number (1, 2,
... in accept order), ``t`` seconds since that connection was accepted (monotonic clock),
``k`` the kind (``open``, ``handshake``, ``frame``, ``close``), ``d`` the direction
(``c2s`` client to server, ``s2c`` server to client; for ``close`` the stream that ended,
absent when the recorder itself stopped), ``f`` the frame's fields (for the client's
handshake: the version text after ``API\\0``), ``raw`` the base64 wire bytes, present only
when ``f`` does not re-encode to exactly the bytes seen (invalid UTF-8, a missing final
NUL), and ``note`` free text. Unknown keys are ignored.

Errors::

    QuanticityError
    └── RecordingError              a .ibkr file problem
        ├── RecordingFormatError    the file does not parse; names the file and line
        └── RecordingWriteError     the file cannot be written (full disk, bad path); names the file
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import io
import logging
import math
import signal
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from quanticity.errors import QuanticityError
from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.protocol import MAX_FRAME, frame, negotiate_version, split_payload

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ConnectionScript",
    "Divergence",
    "FrameCutter",
    "RecordedEvent",
    "Recording",
    "RecordingError",
    "RecordingFormatError",
    "RecordingProxy",
    "RecordingWriteError",
    "RecordingWriter",
    "ReplayReport",
    "ReplayServer",
    "differing_fields",
    "read_recording",
    "serve_recorder",
    "serve_replay",
]

log = logging.getLogger(__name__)

FORMAT: Final = "quanticity.ibkr"
FORMAT_VERSION: Final = 1
API_PREFIX: Final = b"API\0"
C2S: Final = "c2s"
S2C: Final = "s2c"

Direction = Literal["c2s", "s2c"]
Kind = Literal["open", "handshake", "frame", "close"]
OnDivergence = Literal["continue", "stop"]

_KINDS: Final = ("open", "handshake", "frame", "close")
_CHUNK = 64 * 1024
# Client requests: name, and the field holding the request id (0: none) so that a
# divergence error reaches the request the client is waiting on (ib_insync client.py).
_REQUESTS: Final[dict[int, tuple[str, int]]] = {
    1: ("reqMktData", 2),
    2: ("cancelMktData", 2),
    3: ("placeOrder", 1),
    4: ("cancelOrder", 2),
    5: ("reqOpenOrders", 0),
    6: ("reqAccountUpdates", 0),
    7: ("reqExecutions", 2),
    8: ("reqIds", 0),
    9: ("reqContractDetails", 2),
    10: ("reqMktDepth", 2),
    11: ("cancelMktDepth", 2),
    15: ("reqAutoOpenOrders", 0),
    16: ("reqAllOpenOrders", 0),
    20: ("reqHistoricalData", 1),
    25: ("cancelHistoricalData", 2),
    49: ("reqCurrentTime", 0),
    50: ("reqRealTimeBars", 2),
    51: ("cancelRealTimeBars", 2),
    54: ("calculateImpliedVolatility", 2),
    55: ("calculateOptionPrice", 2),
    58: ("reqGlobalCancel", 0),
    59: ("reqMarketDataType", 0),
    61: ("reqPositions", 0),
    62: ("reqAccountSummary", 2),
    64: ("cancelPositions", 0),
    71: ("startApi", 0),
    76: ("reqAccountUpdatesMulti", 2),
    77: ("cancelAccountUpdatesMulti", 2),
    78: ("reqSecDefOptParams", 1),
    87: ("reqHeadTimeStamp", 1),
    92: ("reqPnL", 1),
    93: ("cancelPnL", 1),
    94: ("reqPnLSingle", 1),
    95: ("cancelPnLSingle", 1),
    96: ("reqHistoricalTicks", 1),
    97: ("reqTickByTickData", 1),
    98: ("cancelTickByTickData", 1),
    99: ("reqCompletedOrders", 0),
}


# ---------------------------------------------------------------------------- errors
class RecordingError(QuanticityError):
    """A ``.ibkr`` recording cannot be read or written.

    Attributes:
        path: the recording file.
    """

    def __init__(self, path: Path, message: str, *, operator_action: str | None = None) -> None:
        self.path = path
        super().__init__(message, operator_action=operator_action)


class RecordingFormatError(RecordingError):
    """A ``.ibkr`` file that does not parse.

    Attributes:
        line: the 1-based line at fault (0: the file as a whole).
        problem: what is wrong with it.
    """

    def __init__(self, path: Path, line: int, problem: str, *, operator_action: str | None = None) -> None:
        self.line = line
        self.problem = problem
        where = f"{path} line {line}" if line else str(path)
        super().__init__(path, f"recording {where}: {problem}", operator_action=operator_action)


class RecordingWriteError(RecordingError):
    """The ``.ibkr`` file cannot be written (unwritable path, full disk).

    Attributes:
        reason: the operating system's reason.
    """

    def __init__(self, path: Path, reason: str, *, operator_action: str | None = None) -> None:
        self.reason = reason
        super().__init__(
            path,
            f"cannot write the recording {path}: {reason}",
            operator_action=operator_action or "free disk space or choose a writable --out path, then record again",
        )


# ---------------------------------------------------------------------------- events
def _greeting_wire(text: str) -> bytes:
    payload = text.encode("utf-8")
    return API_PREFIX + struct.pack(">I", len(payload)) + payload


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One line of a recording after the header.

    Attributes:
        conn: connection number, 1-based in accept order.
        t: seconds since the connection was accepted.
        kind: ``open``, ``handshake``, ``frame`` or ``close``.
        direction: ``c2s``/``s2c``; for ``close`` the stream that ended (None: the recorder stopped).
        fields: the frame's fields (the client handshake: its version text).
        raw: the wire bytes when ``fields`` do not re-encode to them exactly.
        note: free text (peer and time for ``open``, a reason for ``close``).
        line: where it was read from (0 when built in memory); not part of equality.
    """

    conn: int
    t: float
    kind: Kind
    direction: Direction | None = None
    fields: tuple[str, ...] = ()
    raw: bytes | None = None
    note: str = ""
    line: int = field(default=0, compare=False)

    @classmethod
    def from_wire(cls, conn: int, t: float, kind: Kind, direction: Direction, wire: bytes) -> RecordedEvent:
        """The event for a handshake or frame seen on the wire (``raw`` kept only when needed)."""
        if kind == "handshake" and direction == C2S:
            start = len(API_PREFIX) if wire.startswith(API_PREFIX) else 0
            fields: tuple[str, ...] = (wire[start + 4 :].decode("utf-8", errors="backslashreplace"),)
        else:
            fields = tuple(split_payload(wire[4:]))
        event = cls(conn, t, kind, direction, fields)
        return event if event.wire() == wire else cls(conn, t, kind, direction, fields, raw=wire)

    def wire(self) -> bytes:
        """The bytes this event carried (empty for ``open`` and ``close``)."""
        if self.raw is not None:
            return self.raw
        if self.kind == "handshake" and self.direction == C2S:
            return _greeting_wire(self.fields[0] if self.fields else "")
        if self.kind in ("handshake", "frame"):
            return frame(self.fields)
        return b""

    def to_json(self) -> bytes:
        """The event as one JSON line (without the newline)."""
        obj: dict[str, Any] = {"c": self.conn, "t": round(self.t, 6), "k": self.kind}
        if self.direction is not None:
            obj["d"] = self.direction
        if self.kind in ("handshake", "frame"):
            obj["f"] = list(self.fields)
        if self.raw is not None:
            obj["raw"] = base64.b64encode(self.raw).decode("ascii")
        if self.note:
            obj["note"] = self.note
        return orjson.dumps(obj)


def _msg_id(fields: Sequence[str]) -> int | None:
    return int(fields[0]) if fields and fields[0].isdigit() else None


def _describe(fields: Sequence[str]) -> str:
    msg_id = _msg_id(fields)
    name = _REQUESTS.get(msg_id, (f"message {msg_id}", 0))[0] if msg_id is not None else "unreadable message"
    shown = list(fields[:16])
    return f"{name} {shown}" + (f" (+{len(fields) - 16} fields)" if len(fields) > 16 else "")


class FrameCutter:
    """Cuts one direction of a TWS API byte stream into wire frames.

    Args:
        greeting: the stream is the client's: its first piece is ``API\\0`` and the length-prefixed
            version text, returned as one piece.
    """

    def __init__(self, greeting: bool = False) -> None:
        self._buf = bytearray()
        self._greeting = greeting

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held back."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``, each with its length prefix.

        Raises:
            ConnectionError: a length prefix beyond ``MAX_FRAME`` (a broken or non-TWS peer).
        """
        self._buf += data
        out: list[bytes] = []
        while True:
            start = 0
            if self._greeting:
                if len(self._buf) < len(API_PREFIX):
                    break
                start = len(API_PREFIX) if self._buf.startswith(API_PREFIX) else 0
            if len(self._buf) < start + 4:
                break
            (size,) = struct.unpack_from(">I", self._buf, start)
            if size > MAX_FRAME:
                raise ConnectionError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
            end = start + 4 + size
            if len(self._buf) < end:
                break
            out.append(bytes(self._buf[:end]))
            del self._buf[:end]
            self._greeting = False
        return out


# ---------------------------------------------------------------------------- writing
class RecordingWriter:
    """Appends events to a new ``.ibkr`` file; every ``write`` is flushed to the OS.

    Args:
        path: the file; gzip-compressed when its name ends in ``.gz``.
        upstream: ``host:port`` of the recorded TWS, kept in the header.
        overwrite: replace an existing file (default: refuse).

    Raises:
        RecordingWriteError: the file cannot be created or the header not written.
    """

    def __init__(self, path: Path | str, *, upstream: str, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.records = 0
        self._failed = False
        mode: Literal["wb", "xb"] = "wb" if overwrite else "xb"
        # The file stays open across writes, so no with block (SIM115): close() closes it.
        try:
            if self.path.name.endswith(".gz"):
                self._file: io.BufferedIOBase = gzip.open(self.path, mode)  # noqa: SIM115
            else:
                self._file = open(self.path, mode)  # noqa: SIM115
        except FileExistsError:
            raise RecordingWriteError(
                self.path, "the file exists", operator_action="choose another --out file or pass --overwrite"
            ) from None
        except OSError as exc:
            raise RecordingWriteError(self.path, exc.strerror or str(exc)) from exc
        created = datetime.now(UTC).isoformat()
        header = {"format": FORMAT, "version": FORMAT_VERSION, "created": created, "upstream": upstream}
        try:
            self._put(orjson.dumps(header) + b"\n")
        except RecordingWriteError:
            self.close()
            raise

    def _put(self, data: bytes) -> None:
        if self._failed:
            raise RecordingWriteError(self.path, "an earlier write failed")
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self._failed = True
            raise RecordingWriteError(self.path, exc.strerror or str(exc)) from exc
        except ValueError as exc:  # written after close()
            raise RecordingWriteError(self.path, str(exc)) from exc

    def write(self, events: Iterable[RecordedEvent]) -> None:
        """Append ``events`` and flush them to the OS (not fsync: a crash of the machine may lose the tail).

        Raises:
            RecordingWriteError: the disk is full or the file became unwritable.
        """
        lines = [e.to_json() + b"\n" for e in events]
        if lines:
            self._put(b"".join(lines))
            self.records += len(lines)

    def close(self) -> None:
        """Flush and close the file (after a failed write the buffered tail is discarded, and said so)."""
        try:
            self._file.close()
        except OSError as exc:
            if not self._failed:
                raise RecordingWriteError(self.path, exc.strerror or str(exc)) from exc
            log.warning("recording %s: the unwritten tail is lost on close: %s", self.path, exc)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- reading
@dataclass(frozen=True, slots=True)
class Recording:
    """A parsed ``.ibkr`` file.

    Attributes:
        path: where it was read from.
        version: the format version.
        created: the header's creation time (ISO text, as written).
        upstream: the header's ``host:port`` of the recorded TWS.
        events: every event, in file order.
    """

    path: Path
    version: int
    created: str
    upstream: str
    events: tuple[RecordedEvent, ...]

    def connections(self) -> list[ConnectionScript]:
        """The replayable connections (both handshakes present), in order of first appearance."""
        grouped: dict[int, list[RecordedEvent]] = {}
        for event in self.events:
            grouped.setdefault(event.conn, []).append(event)
        scripts: list[ConnectionScript] = []
        for conn, events in grouped.items():
            greeting = next((e for e in events if e.kind == "handshake" and e.direction == C2S), None)
            welcome = next((e for e in events if e.kind == "handshake" and e.direction == S2C), None)
            if greeting is None or welcome is None:
                log.info("recording %s: connection %d has no complete handshake; not replayable", self.path, conn)
                continue
            after = next(i for i, e in enumerate(events) if e is welcome) + 1
            rest = tuple(e for e in events[after:] if e.kind in ("frame", "close"))
            scripts.append(ConnectionScript(conn, greeting, welcome, rest))
        return scripts


@dataclass(frozen=True, slots=True)
class ConnectionScript:
    """One recorded connection as the replay plays it.

    Attributes:
        conn: its connection number in the recording.
        greeting: the client's handshake.
        welcome: the server's handshake reply (server version, connection time).
        events: the frames and the close after the handshake, in order.
    """

    conn: int
    greeting: RecordedEvent
    welcome: RecordedEvent
    events: tuple[RecordedEvent, ...]

    @property
    def client_frames(self) -> int:
        """How many client frames the script expects."""
        return sum(1 for e in self.events if e.kind == "frame" and e.direction == C2S)


def _parse_header(path: Path, line: bytes) -> tuple[int, str, str]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordingFormatError(path, 1, f"not a .ibkr header (invalid JSON: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RecordingFormatError(path, 1, f"not a .ibkr header (expected a JSON object with format {FORMAT!r})")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordingFormatError(path, 1, f"header version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise RecordingFormatError(
            path,
            1,
            f"format version {version} is newer than this reader's {FORMAT_VERSION}",
            operator_action="replay it with the Quanticity version that recorded it",
        )
    return version, str(obj.get("created", "")), str(obj.get("upstream", ""))


def _parse_event(path: Path, number: int, line: bytes) -> RecordedEvent:
    def bad(problem: str) -> RecordingFormatError:
        return RecordingFormatError(path, number, problem)

    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise bad(f"not a JSON record ({exc})") from None
    if not isinstance(obj, dict):
        raise bad("a record must be a JSON object")
    conn, t, kind, direction = obj.get("c"), obj.get("t"), obj.get("k"), obj.get("d")
    if not isinstance(conn, int) or isinstance(conn, bool) or conn < 1:
        raise bad(f"'c' (connection number) must be a positive integer, got {conn!r}")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
        raise bad(f"'t' (seconds since the connection opened) must be a number >= 0, got {t!r}")
    if kind not in _KINDS:
        raise bad(f"'k' must be one of {', '.join(_KINDS)}, got {kind!r}")
    if direction not in (C2S, S2C, None) or (direction is None and kind in ("handshake", "frame")):
        raise bad(f"'d' must be {C2S!r} or {S2C!r} for a {kind}, got {direction!r}")
    fields = obj.get("f", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise bad("'f' must be a list of strings")
    raw = _raw_bytes(obj.get("raw"), bad)
    return RecordedEvent(conn, float(t), kind, direction, tuple(fields), raw, str(obj.get("note", "")), number)


def _raw_bytes(raw: object, bad: Callable[[str], RecordingFormatError]) -> bytes | None:
    if raw is None:
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise bad("'raw' is not valid base64") from None


def _check_order(path: Path, events: Sequence[RecordedEvent]) -> None:
    """Per connection: time never goes back, nothing follows the close, no frame precedes the greeting."""
    last: dict[int, RecordedEvent] = {}
    greeted: set[int] = set()
    for event in events:
        before = last.get(event.conn)
        if before is not None and event.t < before.t:
            raise RecordingFormatError(
                path, event.line, f"time goes back from {before.t} s to {event.t} s on connection {event.conn}"
            )
        if before is not None and before.kind == "close":
            raise RecordingFormatError(path, event.line, f"connection {event.conn} has events after its close")
        if event.kind == "handshake" and event.direction == C2S:
            greeted.add(event.conn)
        elif event.kind in ("handshake", "frame") and event.conn not in greeted:
            raise RecordingFormatError(
                path, event.line, f"a {event.kind} on connection {event.conn} before the client's handshake"
            )
        last[event.conn] = event


def read_recording(path: Path | str, *, allow_truncated: bool = False) -> Recording:
    """Parse a ``.ibkr`` file (plain or gzip).

    Args:
        path: the file.
        allow_truncated: accept a file whose last record was cut off (the recorder was killed
            mid-write), keeping the complete records before it; a warning is logged.

    Raises:
        RecordingFormatError: unreadable, not a recording, a newer version, or a bad line.
    """
    path = Path(path)
    header: tuple[int, str, str] | None = None
    events: list[RecordedEvent] = []
    for number, line in _complete_lines(path, allow_truncated):
        if header is None:
            header = _parse_header(path, line)
        elif line.strip():
            events.append(_parse_event(path, number, line))
    if header is None:
        raise RecordingFormatError(path, 1, "empty file: expected the .ibkr header line")
    _check_order(path, events)
    return Recording(path, header[0], header[1], header[2], tuple(events))


def _complete_lines(path: Path, allow_truncated: bool) -> Iterator[tuple[int, bytes]]:
    """The file's complete lines and their numbers; a cut-off tail raises, or ends them when allowed."""
    try:
        with open(path, "rb") as probe:
            compressed = probe.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise RecordingFormatError(path, 0, f"cannot be read: {exc.strerror or exc}") from None
    number = 0
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.endswith(b"\n"):
                    cut = "the last record is cut off (no end of line): the recorder stopped while writing it"
                    _cut_off(path, number, cut, tolerated=allow_truncated and number > 1)
                    return
                yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        problem = f"the compressed stream is damaged or cut off after line {number} ({exc})"
        _cut_off(path, number + 1, problem, tolerated=allow_truncated and number >= 1 and isinstance(exc, EOFError))
    except OSError as exc:
        raise RecordingFormatError(path, number + 1, f"cannot be read: {exc.strerror or exc}") from None


def _cut_off(path: Path, line: int, problem: str, *, tolerated: bool) -> None:
    if not tolerated:
        action = "replay it with --allow-truncated to use the complete records before it"
        raise RecordingFormatError(path, line, problem, operator_action=action)
    log.warning("recording %s line %d: %s; using the records before it", path, line, problem)


# ---------------------------------------------------------------------------- recording proxy
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
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), self.connect_timeout_s
            )
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
                data = await reader.read(_CHUNK)
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


async def _until_terminated(failure: Awaitable[BaseException] | None = None) -> None:
    """Wait for SIGTERM (SIGINT cancels through ``asyncio.run``), or raise what ``failure`` returns first."""
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # signal handlers are POSIX-only
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(terminated.wait())]
    failed = asyncio.ensure_future(failure) if failure is not None else None
    if failed is not None:
        waits.append(failed)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        with contextlib.suppress(NotImplementedError):
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
        await _until_terminated(proxy.wait_failed())
    finally:
        await proxy.stop()


# ---------------------------------------------------------------------------- replay
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
    msg_id = _msg_id(expected)
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
            return f"received {_describe(self.received)} after the end of recorded connection {self.connection}"
        if self.expected[:1] == self.received[:1]:
            diffs = ", ".join(
                f"field {i}: expected {_at(self.expected, i)!r}, received {_at(self.received, i)!r}"
                for i in self.positions[:6]
            )
            more = f" and {len(self.positions) - 6} more" if len(self.positions) > 6 else ""
            return f"expected {_describe(self.expected)} (recording line {self.line}); {diffs}{more}"
        return f"expected {_describe(self.expected)} (recording line {self.line}), received {_describe(self.received)}"


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
        msg_id = _msg_id(divergence.received)
        position = _REQUESTS.get(msg_id, ("", 0))[1] if msg_id is not None else 0
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
        await _until_terminated()
    finally:
        await server.stop()

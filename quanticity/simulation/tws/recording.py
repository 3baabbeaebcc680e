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

import base64
import binascii
import gzip
import io
import logging
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from quanticity.errors import QuanticityError
from quanticity.simulation.tws.protocol import MAX_FRAME, frame, split_payload

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ConnectionScript",
    "READ_CHUNK",
    "REQUEST_NAMES",
    "FrameCutter",
    "RecordedEvent",
    "Recording",
    "RecordingError",
    "RecordingFormatError",
    "RecordingWriteError",
    "RecordingWriter",
    "describe_fields",
    "message_id",
    "read_recording",
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
READ_CHUNK = 64 * 1024
# Client requests: name, and the field holding the request id (0: none) so that a
# divergence error reaches the request the client is waiting on (ib_insync client.py).
REQUEST_NAMES: Final[dict[int, tuple[str, int]]] = {
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


def message_id(fields: Sequence[str]) -> int | None:
    return int(fields[0]) if fields and fields[0].isdigit() else None


def describe_fields(fields: Sequence[str]) -> str:
    msg_id = message_id(fields)
    name = REQUEST_NAMES.get(msg_id, (f"message {msg_id}", 0))[0] if msg_id is not None else "unreadable message"
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

"""RESP encoding and raw reply reading for batches too hot for redis-py's per-argument Python work.

redis-py encodes every argument of every command in Python, which caps one client at
≈130–180k TimeSeries samples/s (ARCHITECTURE.md §6), and without hiredis its parser
builds a reply element by element (~3 µs each: ~30 ms for the 10k-element reply of one
chain's ``TS.MADD``). Here a ``TS.MADD`` of thousands of samples is encoded in one pass
(vectorised with Arrow when the samples share a timestamp), several commands go out as
one write, and their replies are read back as raw bytes and only scanned for errors.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

pa: Any = importlib.import_module("pyarrow")
pc: Any = importlib.import_module("pyarrow.compute")

_CRLF = b"\r\n"
_READ_CHUNK = 1 << 16


def bulk(arg: bytes) -> bytes:
    """One RESP bulk string: ``$len\\r\\narg\\r\\n``."""
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def encode_command(*args: bytes) -> bytes:
    """RESP array of bulk strings for one command."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


def encode_madd(samples: Sequence[tuple[bytes, int, float]]) -> bytes:
    """One ``TS.MADD key ts value [key ts value …]`` command.

    Args:
        samples: ``(key, timestamp_ms, value)`` triples; keys already encoded.

    Returns:
        The RESP bytes, ready for ``send_packed_command``.
    """
    return madd_header(len(samples)) + encode_samples(samples)


def madd_header(samples: int) -> bytes:
    """The start of a ``TS.MADD`` of ``samples`` samples (their arguments follow)."""
    return b"*%d\r\n$7\r\nTS.MADD\r\n" % (1 + 3 * samples)


def encode_samples(samples: Sequence[tuple[bytes, int, float]]) -> bytes:
    """The ``key ts value`` arguments of ``samples``, one sample at a time (any keys, any timestamps)."""
    parts: list[bytes] = []
    append = parts.append
    for key, ts, value in samples:
        ts_b = b"%d" % ts
        value_b = repr(float(value)).encode()
        append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(ts_b), ts_b, len(value_b), value_b))
    return b"".join(parts)


def bulk_keys(keys: Sequence[bytes]) -> Any:
    """Keys as an Arrow binary array of RESP bulk strings, for ``encode_shared_ts``."""
    return pa.array([bulk(key) for key in keys], type=pa.binary())


def encode_shared_ts(keys: Any, ts: int, values: NDArray[np.float64]) -> bytes:
    """The ``key ts value`` arguments of samples that share one timestamp, vectorised.

    Values are written in their shortest round-trip form (Arrow's float formatting), so
    the server parses back exactly the same doubles that ``repr`` would have given it.

    Args:
        keys: ``bulk_keys`` of the series, one per value.
        ts: the timestamp (ms) of every sample.
        values: finite float64 values, one per key.

    Returns:
        The concatenated RESP arguments (no command header).
    """
    if len(values) == 0:
        return b""
    text = pc.cast(pa.array(values, type=pa.float64()), pa.string()).cast(pa.binary())
    lengths = pc.cast(pc.binary_length(text), pa.string()).cast(pa.binary())
    ts_b = b"%d" % ts
    joined = pc.binary_join_element_wise(
        keys,
        pa.scalar(b"$%d\r\n%s\r\n$" % (len(ts_b), ts_b), type=pa.binary()),
        lengths,
        pa.scalar(_CRLF, type=pa.binary()),
        text,
        pa.scalar(_CRLF, type=pa.binary()),
        pa.scalar(b"", type=pa.binary()),  # the separator argument of the kernel
    )
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    start, end = int(offsets[joined.offset]), int(offsets[joined.offset + len(joined)])
    return bytes(memoryview(joined.buffers()[2])[start:end])


class RespProtocolError(Exception):
    """The server's reply is not the RESP shape the command implies; the connection must be dropped.

    Internal to the storage package: ``TimeSeriesWriter`` drops the connection and raises
    redis-py's ``ConnectionError`` instead, which every caller already handles.
    """


@dataclass(frozen=True, slots=True)
class RawReply:
    """One reply, kept as bytes.

    Attributes:
        kind: the RESP type byte (``+ - : $ *``).
        body: for ``+ - :`` the line without its type byte; for ``$`` the payload (``None``
            when null); for ``*`` the raw elements.
        count: the number of elements of an array (``-1`` for a null array), else 0.
        errors: for an array of simple elements, ``(index, message)`` of each error element.
    """

    kind: bytes
    body: bytes | None
    count: int = 0
    errors: tuple[tuple[int, str], ...] = ()

    @property
    def is_error(self) -> bool:
        return self.kind == b"-"

    @property
    def text(self) -> str:
        return (self.body or b"").decode("utf-8", errors="replace")


class ReplyReader:
    """Reads RESP2 replies from a stream as ``RawReply`` objects.

    Arrays of simple elements (integers, simple strings, errors: what ``TS.MADD`` answers)
    are read in bulk: counted by line ends and scanned for error lines in C, never parsed
    element by element. Nested arrays and bulk strings inside an array are refused
    (``RespProtocolError``): none of the commands sent this way answers with them.

    Args:
        stream: the connection's reader.
    """

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._pos = 0

    @property
    def pending(self) -> int:
        """Bytes read from the stream but not consumed by a reply yet."""
        return len(self._buffer) - self._pos

    async def _fill(self) -> None:
        chunk = await self._stream.read(_READ_CHUNK)
        if not chunk:
            raise RespProtocolError("the server closed the connection mid-reply")
        self._buffer += chunk

    async def _line(self) -> bytes:
        while True:
            end = self._buffer.find(_CRLF, self._pos)
            if end >= 0:
                line = bytes(self._buffer[self._pos : end])
                self._pos = end + 2
                return line
            await self._fill()

    async def _exactly(self, size: int) -> bytes:
        while len(self._buffer) - self._pos < size + 2:
            await self._fill()
        data = bytes(self._buffer[self._pos : self._pos + size])
        self._pos += size + 2
        return data

    async def read(self) -> RawReply:
        """The next reply.

        Raises:
            RespProtocolError: the bytes are not a reply of the supported shapes, or the
                connection closed.
        """
        if self._pos:  # drop what earlier replies consumed; positions below are relative to the rest
            del self._buffer[: self._pos]
            self._pos = 0
        line = await self._line()
        if not line:
            raise RespProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        try:
            if kind in (b"+", b"-", b":"):
                return RawReply(kind, rest)
            if kind == b"$":
                size = int(rest)
                return RawReply(kind, None if size < 0 else await self._exactly(size))
            if kind == b"*":
                return await self._array(int(rest))
        except ValueError as exc:
            raise RespProtocolError(f"bad length in reply line {line[:40]!r}") from exc
        raise RespProtocolError(f"unsupported reply type {kind!r}")

    async def _array(self, count: int) -> RawReply:
        if count <= 0:
            return RawReply(b"*", b"", count)
        # Every element is one CRLF-terminated line: count line ends (in C) until there are enough.
        seen, scan = 0, self._pos
        while True:
            found = self._buffer.count(_CRLF, scan)
            if seen + found >= count:
                break
            if found:
                seen += found
                scan = self._buffer.rfind(_CRLF, scan) + 2
            await self._fill()
        tail = bytes(self._buffer[scan:])
        rest = tail.split(_CRLF, count - seen)[-1]
        end = scan + len(tail) - len(rest)
        raw = bytes(self._buffer[self._pos : end])
        self._pos = end
        return RawReply(b"*", raw, count, _element_errors(raw, count))


def _element_errors(raw: bytes, count: int) -> tuple[tuple[int, str], ...]:
    """Check an array's elements are simple values and name the errors among them."""
    head = raw[:1]
    if head in (b"$", b"*") or b"\r\n$" in raw or b"\r\n*" in raw:
        raise RespProtocolError("array with bulk or nested elements where simple values were expected")
    if head != b"-" and b"\r\n-" not in raw:
        return ()
    lines = raw.split(_CRLF)[:count]
    return tuple(
        (index, line[1:].decode("utf-8", errors="replace")) for index, line in enumerate(lines) if line[:1] == b"-"
    )

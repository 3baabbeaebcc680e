"""Tests of quanticity.storage.resp: our RESP bytes equal redis-py's for the same command; raw replies read right."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection

from quanticity.storage.resp import (
    RawReply,
    ReplyReader,
    RespProtocolError,
    bulk_keys,
    encode_command,
    encode_madd,
    encode_shared_ts,
)

_keys = st.binary(min_size=1, max_size=64)
_timestamps = st.integers(min_value=0, max_value=2**63 - 1)
_values = st.floats(allow_nan=False, allow_infinity=False)
_samples = st.lists(st.tuples(_keys, _timestamps, _values), max_size=40)


def _redis_py(*args: bytes | str | int | float) -> bytes:
    """What redis-py itself would send for ``args``."""
    return b"".join(Connection().pack_command(*args))  # type: ignore[no-untyped-call]  # redis-py is untyped here


def test_madd_of_one_sample_is_the_expected_resp() -> None:
    """A single sample encodes to the documented RESP array."""
    assert encode_madd([(b"underlyings:SPY:bid", 1_700_000_000_123, 600.01)]) == (
        b"*4\r\n$7\r\nTS.MADD\r\n$19\r\nunderlyings:SPY:bid\r\n$13\r\n1700000000123\r\n$6\r\n600.01\r\n"
    )


@given(_samples)
def test_madd_matches_redis_py(samples: list[tuple[bytes, int, float]]) -> None:
    """For any keys, timestamps and finite floats, encode_madd == redis-py's pack_command."""
    args: list[bytes | str | int] = ["TS.MADD"]
    for key, ts, value in samples:
        args += [key, ts, repr(float(value))]

    assert encode_madd(samples) == _redis_py(*args)


@given(st.lists(st.tuples(_keys, _timestamps, st.integers(min_value=-(2**53), max_value=2**53)), max_size=10))
def test_madd_sends_integer_values_as_floats(samples: list[tuple[bytes, int, int]]) -> None:
    """Integer values are sent in float form (repr(float(v))), as redis-py would send that float."""
    args: list[bytes | str | int | float] = ["TS.MADD"]
    for key, ts, value in samples:
        args += [key, ts, float(value)]

    assert encode_madd(samples) == _redis_py(*args)


def test_madd_of_a_large_batch_matches_redis_py() -> None:
    """A batch far above redis-py's 6000-byte chunking threshold still gives identical bytes."""
    samples = [(f"underlyings:SYM{i}:mid".encode(), 1_700_000_000_000 + i, i / 7) for i in range(5000)]
    args: list[bytes | str | int] = ["TS.MADD"]
    for key, ts, value in samples:
        args += [key, ts, repr(value)]

    assert encode_madd(samples) == _redis_py(*args)


@given(st.from_regex(rb"[A-Z][A-Z.]{0,15}", fullmatch=True), st.lists(st.binary(max_size=200), max_size=10))
def test_encode_command_matches_redis_py(command: bytes, args: list[bytes]) -> None:
    """encode_command(name, *args) == redis-py's packing of the same bytes arguments."""
    assert encode_command(command, *args) == _redis_py(command, *args)


@pytest.mark.parametrize("arg", [b"", b"\r\n", b"$3\r\nabc", bytes(range(256))])
def test_encode_command_is_binary_safe(arg: bytes) -> None:
    """Empty, CRLF-containing and arbitrary binary arguments are length-prefixed, not escaped."""
    expected = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(arg), arg)
    assert encode_command(b"SET", b"k", arg) == expected


# --------------------------------------------------------------------------- shared-timestamp encoding
def _parse_args(packed: bytes) -> list[bytes]:
    """The bulk-string arguments of RESP bytes (a header line first, if any, is skipped)."""
    args: list[bytes] = []
    pos = 0
    while pos < len(packed):
        end = packed.index(b"\r\n", pos)
        line = packed[pos:end]
        pos = end + 2
        if line[:1] == b"$":
            size = int(line[1:])
            args.append(packed[pos : pos + size])
            pos += size + 2
    return args


@given(
    st.lists(st.tuples(_keys, st.floats(allow_nan=False, allow_infinity=False)), max_size=60),
    _timestamps,
)
def test_shared_ts_encoding_carries_the_same_doubles(samples: list[tuple[bytes, float]], ts: int) -> None:
    """The vectorised encoding sends each key with ts and a text that parses back to the very same double."""
    keys = bulk_keys([key for key, _ in samples])
    values = np.array([value for _, value in samples], dtype=np.float64)

    args = _parse_args(encode_shared_ts(keys, ts, values))

    assert args[0::3] == [key for key, _ in samples]
    assert args[1::3] == [b"%d" % ts] * len(samples)
    sent = [float(text) for text in args[2::3]]
    assert [struct.pack("<d", v) for v in sent] == [struct.pack("<d", v) for _, v in samples]  # -0.0 included


def test_shared_ts_encoding_of_nothing_is_empty() -> None:
    """No values, no bytes."""
    assert encode_shared_ts(bulk_keys([]), 1, np.array([], dtype=np.float64)) == b""


# --------------------------------------------------------------------------- raw replies
def _reader(data: bytes, chunk: int) -> ReplyReader:
    stream = asyncio.StreamReader()
    for start in range(0, len(data), chunk):
        stream.feed_data(data[start : start + chunk])
    stream.feed_eof()
    return ReplyReader(stream)


async def _read_all(data: bytes, count: int, chunk: int) -> tuple[list[RawReply], int]:
    reader = _reader(data, chunk)
    replies = [await reader.read() for _ in range(count)]
    return replies, reader.pending


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
async def test_replies_are_read_whatever_the_read_boundaries(chunk: int) -> None:
    """A TS.MADD array with an error element, +OK, an error, an integer, bulk and null bulk, in any chunking."""
    madd = b"*4\r\n:1700000000000\r\n-ERR TSDB: the key does not exist\r\n:1700000000000\r\n:5\r\n"
    data = madd + b"+OK\r\n-WRONGTYPE nope\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*0\r\n"

    replies, pending = await _read_all(data, 7, chunk)

    assert pending == 0
    first = replies[0]
    assert (first.kind, first.count, first.errors) == (b"*", 4, ((1, "ERR TSDB: the key does not exist"),))
    assert [(r.kind, r.body) for r in replies[1:]] == [
        (b"+", b"OK"),
        (b"-", b"WRONGTYPE nope"),
        (b":", b"42"),
        (b"$", b"he\r\no"),
        (b"$", None),
        (b"*", b""),
    ]
    assert replies[2].is_error and replies[2].text == "WRONGTYPE nope"


async def test_a_large_integer_array_is_read_in_one_piece() -> None:
    """A 20k-element reply (one chain's TS.MADD) is read whole, with no errors, leaving the next reply."""
    data = b"*20000\r\n" + b":1764000000000\r\n" * 20000 + b"+OK\r\n"

    replies, pending = await _read_all(data, 2, 65536)

    assert (replies[0].count, replies[0].errors, replies[1].body, pending) == (20000, (), b"OK", 0)


async def test_extra_bytes_are_left_pending() -> None:
    """Bytes beyond the replies asked for stay pending (the caller treats the stream as out of step)."""
    _, pending = await _read_all(b":1\r\n:2\r\n", 1, 1 << 20)
    assert pending == 4


@pytest.mark.parametrize(
    "data",
    [b"*2\r\n$1\r\na\r\n:1\r\n", b"*1\r\n*0\r\n", b"?what\r\n", b"\r\n", b"*2\r\n:1\r\n", b"$x\r\n"],
)
async def test_unsupported_or_truncated_replies_are_protocol_errors(data: bytes) -> None:
    """Bulk or nested elements inside an array, unknown types, bad lengths and a closed stream are refused."""
    with pytest.raises(RespProtocolError):
        await _read_all(data, 1, 3)

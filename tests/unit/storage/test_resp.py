"""Tests of quanticity.storage.resp: our RESP bytes equal redis-py's for the same command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection

from quanticity.storage.resp import encode_command, encode_madd

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

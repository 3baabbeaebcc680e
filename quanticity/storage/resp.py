"""Pre-encoding of Redis commands in RESP, for batches too hot for per-argument encoding.

redis-py encodes every argument of every command in Python, which caps one client at
≈130–180k TimeSeries samples/s (ARCHITECTURE.md §6). A ``TS.MADD`` of thousands of
samples is encoded here in one pass into one bytes object instead.
"""

from __future__ import annotations

from collections.abc import Sequence


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def encode_command(*args: bytes) -> bytes:
    """RESP array of bulk strings for one command."""
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


def encode_madd(samples: Sequence[tuple[bytes, int, float]]) -> bytes:
    """One ``TS.MADD key ts value [key ts value …]`` command.

    Args:
        samples: ``(key, timestamp_ms, value)`` triples; keys already encoded.

    Returns:
        The RESP bytes, ready for ``send_packed_command``.
    """
    parts = [b"*%d\r\n$7\r\nTS.MADD\r\n" % (1 + 3 * len(samples))]
    append = parts.append
    for key, ts, value in samples:
        ts_b = b"%d" % ts
        value_b = repr(float(value)).encode()
        append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(ts_b), ts_b, len(value_b), value_b))
    return b"".join(parts)

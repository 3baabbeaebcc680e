"""The 1 m and 5 m compactions of a chain's option series, computed here and written with the raw samples.

A server-side rule does the same work per sample: with the two ``last`` rules of the price
ladder, Redis spent about four times as long on a full SPY chain's ``TS.MADD`` as without
them (docs/benchmarks.md). A chain's samples all share one timestamp per poll, so the
``last`` aggregation of a bucket is simply, per series, the last finite value seen while
that bucket was open, and a bucket's compaction sample is due once a snapshot from a later
bucket arrives. That is one vectorised ``np.where`` per poll and, when a bucket closes, one
more block of samples in the same ``TS.MADD``: the server does the work of a plain sample
once per bucket instead of rule work on every sample.

The result equals what the rule gives (``TS.RANGE … AGGREGATION last``, bucket start as the
timestamp) for snapshots that arrive in time order. A snapshot older than the open bucket
(a replay behind live data) writes its raw samples only, as a rule does once its bucket
has moved on; a replay of the same data leaves the compactions as they were.

The open buckets hold nothing the raw series do not: a store that starts (or a chain whose
strikes changed) reads them back with one ``TS.MGET`` of the chain's raw series, so a
restart loses no bucket, not even one that closed while the store was down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanticity.storage.redis_timeseries import Compaction


@dataclass(frozen=True, slots=True)
class OpenBucket:
    """The bucket a resolution is filling: its start and, per series, its last finite value (NaN: none yet).

    Once a later snapshot closes it, its ``values`` (NaN skipped) are written at ``start`` into the
    compaction series.
    """

    start: int
    values: NDArray[np.float64]


def advance(
    bucket: OpenBucket | None, bucket_ms: int, ts: int, values: NDArray[np.float64]
) -> tuple[OpenBucket | None, OpenBucket | None]:
    """The open bucket after one snapshot at ``ts``, and the bucket that snapshot closed (if any).

    Pure: the caller keeps the new state only once the write went through, so a failed write
    that is retried closes the same bucket again.
    """
    start = ts - ts % bucket_ms
    fresh = np.where(np.isfinite(values), values, np.nan)
    if bucket is None:
        return OpenBucket(start, fresh), None
    if start > bucket.start:
        return OpenBucket(start, fresh), bucket
    if start < bucket.start:  # behind the open bucket: raw samples only
        return bucket, None
    if len(values) != len(bucket.values):
        raise ValueError(f"{len(values)} values for a bucket of {len(bucket.values)} series")
    return OpenBucket(start, np.where(np.isnan(fresh), bucket.values, fresh)), None


def recovered(bucket_ms: int, names: Sequence[str], last: Mapping[str, tuple[int, float]]) -> OpenBucket | None:
    """The open bucket as the raw series show it: ``last`` maps a series to its latest sample.

    The bucket is the one holding the newest sample of them all; a series whose latest sample
    is older has no value in it yet.
    """
    if not last:
        return None
    start = max(ts for ts, _ in last.values())
    start -= start % bucket_ms
    values = np.full(len(names), np.nan)
    for i, name in enumerate(names):
        sample = last.get(name)
        if sample is not None and sample[0] - sample[0] % bucket_ms == start:
            values[i] = sample[1]
    return OpenBucket(start, values)


def parse_mget(reply: Any, key_prefix: str) -> dict[str, tuple[int, float]]:
    """``TS.MGET``'s reply as redis-py returns it, as ``{key without prefix: (ts, value)}``.

    RESP2 gives ``[[key, labels, [ts, value]], …]``, RESP3 ``{key: [labels, [ts, value]]}``;
    series without a sample and keys outside ``key_prefix`` are left out.
    """
    entries = reply.items() if isinstance(reply, dict) else ((entry[0], entry[1:]) for entry in reply)
    out: dict[str, tuple[int, float]] = {}
    for raw_key, rest in entries:
        sample = rest[-1]
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        if not sample or not key.startswith(key_prefix):
            continue
        out[key[len(key_prefix) :]] = (int(sample[0]), float(sample[1]))
    return out


@dataclass
class Ladder:
    """The open buckets of one list of series, one per compaction of the ladder."""

    compactions: tuple[Compaction, ...]
    open: dict[str, OpenBucket | None]

    @classmethod
    def recover(
        cls, compactions: tuple[Compaction, ...], names: Sequence[str], last: Mapping[str, tuple[int, float]]
    ) -> Ladder:
        for c in compactions:
            if c.aggregation != "last":
                raise ValueError(f"client-side compaction computes 'last' only, not {c.aggregation!r} ({c.suffix})")
        return cls(compactions, {c.suffix: recovered(c.bucket_ms, names, last) for c in compactions})

    def advance(
        self, ts: int, values: NDArray[np.float64]
    ) -> tuple[dict[str, OpenBucket | None], list[tuple[str, OpenBucket]]]:
        """The open buckets after a snapshot, and the ``(suffix, bucket)`` pairs it closed (state unchanged)."""
        after: dict[str, OpenBucket | None] = {}
        closed: list[tuple[str, OpenBucket]] = []
        for c in self.compactions:
            after[c.suffix], done = advance(self.open[c.suffix], c.bucket_ms, ts, values)
            if done is not None:
                closed.append((c.suffix, done))
        return after, closed

"""Client-side ``last`` compaction: the buckets it closes equal a plain group-by over the samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.storage.chain_compaction import Ladder, advance, parse_mget, recovered
from quanticity.storage.redis_timeseries import PRICE_LADDER, Compaction

SERIES = 3
value = st.one_of(st.just(math.nan), st.floats(-1e6, 1e6, allow_nan=False), st.just(math.inf))
polls = st.lists(
    st.tuples(st.integers(1, 200_000), st.lists(value, min_size=SERIES, max_size=SERIES)), min_size=1, max_size=40
)


def _reference(samples: list[tuple[int, list[float]]], bucket_ms: int) -> dict[tuple[int, int], float]:
    """(bucket start, series) → the last finite value written there, over the in-order samples."""
    out: dict[tuple[int, int], float] = {}
    for ts, values in samples:
        for i, v in enumerate(values):
            if math.isfinite(v):
                out[ts - ts % bucket_ms, i] = v
    return out


@given(polls)
def test_closed_buckets_equal_a_group_by_of_the_samples(steps: list[tuple[int, list[float]]]) -> None:
    ts = 1_700_000_000_000
    samples = []
    for gap, values in steps:  # strictly increasing timestamps, as the polls of one chain
        ts += gap
        samples.append((ts, values))
    bucket = None
    got: dict[tuple[int, int], float] = {}
    for at, values in samples:
        bucket, closed = advance(bucket, 60_000, at, np.array(values))
        if closed is not None:
            got.update(((closed.start, i), v) for i, v in enumerate(closed.values.tolist()) if not math.isnan(v))
    last_open = samples[-1][0] // 60_000 * 60_000
    expected = {key: v for key, v in _reference(samples, 60_000).items() if key[0] < last_open}
    assert got == expected


def test_a_snapshot_behind_the_open_bucket_changes_nothing() -> None:
    bucket, _ = advance(None, 60_000, 120_500, np.array([1.0, 2.0]))
    assert bucket is not None
    after, closed = advance(bucket, 60_000, 59_000, np.array([9.0, 9.0]))
    assert closed is None and after is bucket


def test_recovered_bucket_holds_only_series_whose_last_sample_is_in_it() -> None:
    last = {"a": (125_000, 1.5), "b": (61_000, 2.5)}  # b's last sample is a bucket earlier
    bucket = recovered(60_000, ["a", "b", "c"], last)
    assert bucket is not None and bucket.start == 120_000
    assert bucket.values[0] == 1.5 and math.isnan(bucket.values[1]) and math.isnan(bucket.values[2])
    assert recovered(60_000, ["a"], {}) is None


def test_mget_replies_of_both_protocols_parse_alike() -> None:
    resp2 = [[b"p:a", [], [125_000, b"1.5"]], [b"p:b", [], []], [b"other:c", [], [1, b"2"]]]
    resp3 = {b"p:a": [{}, [125_000, 1.5]], b"p:b": [{}, []], b"other:c": [{}, [1, 2.0]]}
    assert parse_mget(resp2, "p:") == parse_mget(resp3, "p:") == {"a": (125_000, 1.5)}


def test_only_last_aggregation_is_computed_client_side() -> None:
    with pytest.raises(ValueError, match="'sum'"):
        Ladder.recover((Compaction("1m", 60_000, "sum", 1),), ["a"], {})
    ladder = Ladder.recover(PRICE_LADDER, ["a"], {})
    after, closed = ladder.advance(300_000, np.array([1.0]))
    assert closed == [] and set(after) == {"1m", "5m"}

"""Tests of the pure parts of quanticity.storage.option_store and of the sample batches it builds.

The column-wise write path must store exactly what the reference ``chain_samples`` defines,
and the chain document must carry exactly the record. Writing to Redis is covered by the
integration suite (tests/integration/test_store_role.py).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from quanticity.observability.metrics import Metrics
from quanticity.schemas import OptionChainSnapshot
from quanticity.schemas.codec import encode_record
from quanticity.storage.option_store import (
    OptionChainStore,
    chain_document,
    chain_samples,
    decode_document,
    event_ms,
    mark_column,
    option_key,
)
from quanticity.storage.redis_timeseries import SampleBatch, SeriesKeys, TimeSeriesWriter

EVENT = datetime(2026, 11, 24, 15, 30, 12, 345000, tzinfo=UTC)

_price = st.none() | st.floats(min_value=0, max_value=5000, allow_nan=False)
_rows = st.lists(st.tuples(_price, _price, _price, _price), min_size=1, max_size=40)


def _snapshot(rows: list[tuple[float | None, ...]], **extra: Any) -> OptionChainSnapshot:
    n = len(rows)
    columns: dict[str, Any] = {
        "strike": [500.0 + 2.5 * i for i in range(n)],
        "right": ["C" if i % 2 == 0 else "P" for i in range(n)],
        "bid": [r[0] for r in rows],
        "ask": [r[1] for r in rows],
        "last": [r[2] for r in rows],
        "implied_vol": [r[3] for r in rows],
        **{name: [None] * n for name in ("volume", "open_interest", "delta", "gamma", "theta", "vega", "rho")},
    }
    return OptionChainSnapshot(
        symbol="SPY",
        expiry=date(2026, 12, 18),
        record_id="c-1",
        event_time=EVENT,
        ingest_time=EVENT,
        source="alphavantage",
        run_id="r",
        mode="sim",
        **{**columns, **extra},
    )


def _decode_madd(command: bytes) -> list[tuple[str, int, float]]:
    """The (key, ts, value) triples of a TS.MADD's RESP bytes."""
    args: list[bytes] = []
    pos = command.index(b"\r\n") + 2
    while pos < len(command):
        end = command.index(b"\r\n", pos)
        size = int(command[pos + 1 : end])
        args.append(command[end + 2 : end + 2 + size])
        pos = end + 4 + size
    assert args[0] == b"TS.MADD"
    assert int(command[1 : command.index(b"\r\n")]) == len(args), "the header counts other arguments than follow"
    rest = args[1:]
    return [(k.decode(), int(t), float(v)) for k, t, v in zip(rest[0::3], rest[1::3], rest[2::3], strict=True)]


@given(_rows)
def test_column_marks_are_the_reference_marks(rows: list[tuple[float | None, ...]]) -> None:
    """mark_column gives chain_samples' mark (mid when ask >= bid > 0, else last) for every row, NaN for none."""
    snapshot = _snapshot(rows)
    reference = {key: value for key, _, value in chain_samples(snapshot) if key.endswith(":mark")}

    marks = mark_column(snapshot)

    for i, (strike, right) in enumerate(zip(snapshot.strike, snapshot.right, strict=True)):
        key = option_key("SPY", "2026-12-18", strike, right, "mark")
        assert (key in reference) == (not math.isnan(marks[i]))
        if key in reference:
            assert marks[i] == reference[key]  # the same double, not just close


@given(_rows)
def test_batch_of_a_snapshot_sends_exactly_the_reference_samples(rows: list[tuple[float | None, ...]]) -> None:
    """The vectorised TS.MADD of a snapshot holds the samples chain_samples lists, nothing more."""
    snapshot = _snapshot(rows)
    expiry = "2026-12-18"
    names = {
        field: [option_key("SPY", expiry, k, r, field) for k, r in zip(snapshot.strike, snapshot.right, strict=True)]
        for field in ("mark", "iv")
    }
    batch = SampleBatch("p:")
    ts = event_ms(snapshot)
    batch.add_shared_ts(SeriesKeys(names["mark"], "p:"), ts, mark_column(snapshot))
    batch.add_shared_ts(SeriesKeys(names["iv"], "p:"), ts, np.array(snapshot.implied_vol, dtype=np.float64))

    sent = _decode_madd(batch.command()) if batch.count else []

    expected = [(f"p:{key}", t, v) for key, t, v in chain_samples(snapshot)]
    assert sorted(sent) == sorted(expected)
    assert batch.count == len(expected) and batch.rejected == []


def test_batch_names_the_key_of_each_sample_sent_and_rejects_infinities() -> None:
    """key_of maps a reply index back to its key across blocks; ±inf is rejected, NaN is simply not sent."""
    batch = SampleBatch()
    batch.add([("a", 1, 1.0), ("b", 1, math.inf)])
    keys = SeriesKeys(["x0", "x1", "x2", "x3"])
    batch.add_shared_ts(keys, 5, np.array([1.0, np.nan, -np.inf, 4.0]))
    batch.add_shared_ts(SeriesKeys(["y0"]), 6, np.array([2.0]))

    sent = _decode_madd(batch.command())

    assert [key for key, _, _ in sent] == ["a", "x0", "x3", "y0"]
    assert [batch.key_of(i) for i in range(batch.count)] == ["a", "x0", "x3", "y0"]
    assert batch.rejected == [("b", "value is not finite"), ("x2", "value is not finite")]
    with pytest.raises(ValueError, match="3 values for 4 series"):
        batch.add_shared_ts(keys, 5, np.array([1.0, 2.0, 3.0]))


def test_samples_sharing_a_timestamp_across_snapshots_are_encoded_together() -> None:
    """Blocks with one timestamp are concatenated; key_of still follows the send order."""
    batch = SampleBatch()
    batch.add_shared_ts(SeriesKeys(["a", "b"]), 7, np.array([1.0, 2.0]))
    batch.add_shared_ts(SeriesKeys(["c"]), 8, np.array([3.0]))
    batch.add_shared_ts(SeriesKeys(["d"]), 7, np.array([4.0]))

    sent = _decode_madd(batch.command())

    assert sent == [("a", 7, 1.0), ("b", 7, 2.0), ("d", 7, 4.0), ("c", 8, 3.0)]
    assert [batch.key_of(i) for i in range(4)] == ["a", "b", "d", "c"]


@given(
    plain=st.lists(st.floats(min_value=-1e6, max_value=1e6), max_size=7),
    shared=st.lists(st.tuples(st.integers(1, 3), st.lists(st.floats(0, 10), max_size=9)), max_size=4),
    most=st.integers(1, 12),
)
def test_parts_are_the_whole_command_cut_into_bounded_commands(
    plain: list[float], shared: list[tuple[int, list[float]]], most: int
) -> None:
    """Parts hold the command's samples in its order, at most ``most`` each; key_of follows the parts."""
    batch = SampleBatch()
    batch.add([(f"p{i}", 9, v) for i, v in enumerate(plain)])
    for block, (ts, values) in enumerate(shared):
        batch.add_shared_ts(SeriesKeys([f"s{block}.{i}" for i in range(len(values))]), ts, np.array(values))
    if not batch.count:
        assert list(batch.parts(most)) == []
        return

    whole = _decode_madd(batch.command())
    parts = list(batch.parts(most))

    assert all(1 <= part.count <= most for part in parts)
    assert [part.first for part in parts] == [sum(p.count for p in parts[:i]) for i in range(len(parts))]
    assert len(parts) == -(-batch.count // most)  # only the last part is short
    cut = [sample for part in parts for sample in _decode_madd(part.command)]
    assert cut == whole
    assert [len(_decode_madd(part.command)) for part in parts] == [part.count for part in parts]
    assert [batch.key_of(i) for i in range(batch.count)] == [key for key, _, _ in whole]


def test_a_writer_refuses_commands_without_samples() -> None:
    with pytest.raises(ValueError, match="max_samples_per_command must be >= 1, got 0"):
        TimeSeriesWriter(Redis.from_url("redis://127.0.0.1:1"), Metrics(), max_samples_per_command=0)
    batch = SampleBatch()
    batch.add([("a", 1, 1.0)])
    with pytest.raises(ValueError, match="max_samples must be >= 1, got 0"):
        batch.parts(0)


def test_document_is_the_record_in_its_wire_form() -> None:
    """The chain document is the record's columnar wire form and reads back as the same record (and so does JSON)."""
    snapshot = _snapshot(
        [(1.0, 1.1, None, 0.2), (None, None, 0.5, None)],
        contract_id=["SPY261218C00500000", None],
        mark=[1.05, None],
        bid_size=[10.0, 0.0],
        ask_size=[12.0, None],
        row_flags=[["junk_greeks:iv_above_3"], []],
        flags=["junk_greeks"],
    )

    document = chain_document(snapshot)

    assert document == encode_record(snapshot)  # the record's own columnar wire form
    assert decode_document(document) == snapshot
    assert decode_document(document).model_dump(mode="json") == orjson.loads(snapshot.model_dump_json())
    # A document written as JSON (before the columnar form) still reads back.
    assert decode_document(snapshot.model_dump_json().encode()) == snapshot


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_sample_timestamps_are_exact_milliseconds(event_time: datetime) -> None:
    """The event time in whole milliseconds, without the float rounding of timestamp() * 1000."""
    snapshot = _snapshot([(1.0, 1.2, None, 0.3)]).model_copy(update={"event_time": event_time})
    expected = (event_time - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)

    assert event_ms(snapshot) == expected
    assert {ts for _, ts, _ in chain_samples(snapshot)} == {expected}


def test_a_compaction_spread_below_one_is_refused() -> None:
    writer = TimeSeriesWriter(Redis.from_url("redis://127.0.0.1:1"), Metrics())  # never connected
    with pytest.raises(ValueError, match="compaction_spread must be at least 1, not 0"):
        OptionChainStore(writer, compaction_spread=0)


def test_a_series_keys_slice_shares_the_encoding() -> None:
    keys = SeriesKeys(["a:mark", "b:mark", "c:mark"], "p:")
    part = keys.slice(1, 3)
    assert part.names == ["b:mark", "c:mark"]
    assert part.encoded.to_pylist() == [b"$8\r\np:b:mark\r\n", b"$8\r\np:c:mark\r\n"]
    assert len(keys.slice(2, 2)) == 0

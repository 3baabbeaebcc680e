"""Tests of quanticity.data_ingestion.demo: the deterministic synthetic quote generator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.data_ingestion.demo import DemoQuoteGenerator
from quanticity.schemas import UnderlyingQuote

T0 = datetime(2025, 3, 4, 14, 30, tzinfo=UTC)
SYMBOLS = ["SPY", "QQQ", "IWM", "AAPL"]


def _run(
    generator: DemoQuoteGenerator, steps: int, step: timedelta = timedelta(seconds=1)
) -> list[list[UnderlyingQuote]]:
    return [generator.next_quotes(T0 + i * step) for i in range(steps)]


def test_same_seed_gives_the_same_quotes() -> None:
    """Two generators with the same symbols, run id and seed produce identical records."""
    first = _run(DemoQuoteGenerator(SYMBOLS, "run-1", seed=11), 20)
    second = _run(DemoQuoteGenerator(SYMBOLS, "run-1", seed=11), 20)

    assert first == second


def test_different_seed_gives_different_prices() -> None:
    """Another seed walks elsewhere (the seed is actually used)."""
    first = _run(DemoQuoteGenerator(SYMBOLS, "run-1", seed=1), 5)
    second = _run(DemoQuoteGenerator(SYMBOLS, "run-1", seed=2), 5)

    assert [q.last for batch in first for q in batch] != [q.last for batch in second for q in batch]


def test_one_quote_per_symbol_per_call() -> None:
    """Each call quotes every symbol exactly once, stamped with the call's time, run id and mode."""
    generator = DemoQuoteGenerator(SYMBOLS, "run-7", mode="sim")

    for batch in _run(generator, 3):
        assert sorted(q.symbol for q in batch) == sorted(SYMBOLS)
        assert len({q.event_time for q in batch}) == 1
        assert all(q.run_id == "run-7" and q.mode == "sim" and q.source == "sim" for q in batch)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=3600))
def test_quotes_are_positive_and_uncrossed(seed: int, step_s: int) -> None:
    """For any seed and step, every quote has 0 < bid < ask and a last between them."""
    generator = DemoQuoteGenerator(SYMBOLS, "run-1", seed=seed)

    for batch in _run(generator, 30, timedelta(seconds=step_s)):
        for quote in batch:
            assert quote.bid is not None and quote.ask is not None and quote.last is not None
            assert 0 < quote.bid < quote.ask
            assert quote.bid <= quote.last <= quote.ask
            assert quote.bid_size and quote.ask_size and quote.volume


def test_record_ids_are_stable_across_generators_and_distinct_across_steps() -> None:
    """Ids depend on run id, symbol and sequence number: equal for a replay, unique otherwise."""
    first = _run(DemoQuoteGenerator(SYMBOLS, "run-1", seed=3), 10)
    replay = _run(DemoQuoteGenerator(SYMBOLS, "run-1", seed=3), 10)
    other_run = _run(DemoQuoteGenerator(SYMBOLS, "run-2", seed=3), 10)

    ids = [q.record_id for batch in first for q in batch]
    assert ids == [q.record_id for batch in replay for q in batch]
    assert len(set(ids)) == len(ids) == 10 * len(SYMBOLS)
    assert set(ids).isdisjoint(q.record_id for batch in other_run for q in batch)


def test_known_symbols_start_near_their_reference_price() -> None:
    """SPY starts near 600; unknown symbols start near 100."""
    batch = DemoQuoteGenerator(["SPY", "ZZZ"], "run-1").next_quotes(T0)
    last = {q.symbol: q.last for q in batch}

    assert last["SPY"] is not None and abs(last["SPY"] - 600.0) < 6.0
    assert last["ZZZ"] is not None and abs(last["ZZZ"] - 100.0) < 1.0

"""The depth book: its shape, and diff operations a list-based client book can apply."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quanticity.simulation.tws.depth import (
    ASK,
    BID,
    DELETE,
    INSERT,
    UPDATE,
    Level,
    book_operations,
    build_side,
    depth_refusal,
)
from tests.unit.simulation.tws.samples import INDEX, STOCK


def _apply(book: list[Level], ops: list[tuple[int, int, Level]]) -> list[Level]:
    """What ib_insync's updateMktDepthL2 does with each operation."""
    out = list(book)
    for op, pos, level in ops:
        if op == INSERT:
            out.insert(pos, level)
        elif op == UPDATE:
            out[pos] = level
        else:
            assert op == DELETE
            out.pop(pos)
    return out


def test_sides_are_ordered_from_the_touch() -> None:
    bids = build_side(60000, 300, BID, 10, key=1, second=5)
    asks = build_side(60001, 400, ASK, 10, key=1, second=5)
    assert len(bids) == len(asks) == 10
    assert [b.ticks for b in bids] == sorted((b.ticks for b in bids), reverse=True) and bids[0].ticks == 60000
    assert [a.ticks for a in asks] == sorted(a.ticks for a in asks) and asks[0].size == 400
    assert all(lv.size > 0 and lv.market_maker for lv in bids + asks)


def test_a_one_tick_move_is_an_insert_and_a_delete() -> None:
    before = build_side(60000, 300, BID, 10, key=3, second=1)
    after = build_side(60001, 300, BID, 10, key=3, second=1)
    ops = book_operations(before, after)
    assert _apply(before, ops) == after
    assert {op for op, _, _ in ops} >= {INSERT, DELETE}


@given(st.integers(1000, 2000), st.integers(-5, 5), st.integers(1, 10), st.integers(0, 3), st.sampled_from([BID, ASK]))
def test_operations_turn_the_old_book_into_the_new(best: int, move: int, rows: int, second: int, side: int) -> None:
    old = build_side(best, 100, side, rows, key=9, second=second)
    new = build_side(best + move, 200, side, rows, key=9, second=second + 1)
    assert _apply(old, book_operations(old, new)) == new
    assert _apply([], book_operations([], new)) == new


def test_smart_and_non_stock_depth_is_refused() -> None:
    assert depth_refusal(STOCK, "ARCA", False) is None
    assert depth_refusal(STOCK, "SMART", False) is not None
    assert depth_refusal(STOCK, "ARCA", True) is not None
    assert depth_refusal(INDEX, "CBOE", False) is not None

"""Level-1 rendering: market-data types, delayed tick ids, and tick diffs."""

from __future__ import annotations

from dataclasses import replace

from quanticity.simulation.tws.market_feed import MarketDataSubscription, decide_data_type
from quanticity.simulation.tws.quotes import Auction
from tests.unit.simulation.tws.samples import STOCK, quote


def _ticks(msgs: list[list[object]]) -> list[tuple[object, object]]:
    return [(msg[0], msg[3]) for msg in msgs if msg[0] in (1, 2, 45, 46)]


def test_data_type_rules() -> None:
    assert decide_data_type(1, True, True, STOCK).data_type == 1
    assert decide_data_type(3, True, True, STOCK).data_type == 1  # live beats delayed when entitled
    assert decide_data_type(2, True, False, STOCK).data_type == 2  # frozen while closed
    refused = decide_data_type(1, False, True, STOCK)
    assert refused.data_type is None and refused.notice is not None and refused.notice[0] == 354
    delayed = decide_data_type(3, False, True, STOCK)
    assert (delayed.data_type, delayed.delayed, delayed.notice and delayed.notice[0]) == (3, True, 10167)
    assert decide_data_type(4, False, False, STOCK).data_type == 4


def test_first_render_sends_everything_then_only_changes() -> None:
    sub = MarketDataSubscription(1, STOCK, frozenset({233, 225}), False, 1, 0)
    q = replace(quote(), auction=Auction(100.01, 5000, -1200, 0))
    first = sub.render(q, None)
    kinds = {(msg[0], msg[3]) for msg in first}
    assert {(1, 1), (1, 2), (1, 4), (2, 8), (1, 9), (46, 48), (2, 34), (1, 35), (2, 36)} <= kinds
    rt = next(msg[4] for msg in first if msg[0] == 46 and msg[3] == 48)
    assert isinstance(rt, str) and len(rt.split(";")) == 6
    assert sub.render(q, None) == []
    moved = sub.render(replace(q, bid=100.01, bid_size=500), None)
    assert [(msg[0], msg[3], msg[4], msg[5]) for msg in moved] == [(1, 1, 100.01, 500)]


def test_delayed_subscriptions_use_the_delayed_tick_types() -> None:
    sub = MarketDataSubscription(2, STOCK, frozenset(), False, 3, 900)
    ticks = {(msg[0], msg[3]) for msg in sub.render(quote(), None)}
    assert {(1, 66), (1, 67), (1, 68), (2, 74), (1, 75)} <= ticks
    assert not {(1, 1), (1, 2), (1, 4)} & ticks

"""The fill model: when orders fill, at what price, what they cost, and what is rejected."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quanticity.simulation.tws.fill_model import OrderTerms, commission, decide, off_tick, rejection
from tests.unit.simulation.tws.samples import INDEX, OPTION, STOCK, quote

D = Decimal


def test_market_orders_take_the_touch() -> None:
    assert decide(OrderTerms(True, "MKT"), STOCK, quote(), arrival=True).price == D("100.02")
    assert decide(OrderTerms(False, "MKT"), STOCK, quote(), arrival=True).price == D("100.0")


def test_no_touch_no_fill() -> None:
    assert decide(OrderTerms(True, "MKT"), STOCK, quote(ask=None), arrival=True).price is None
    assert decide(OrderTerms(True, "MKT"), STOCK, quote(ask_size=0), arrival=True).price is None
    assert decide(OrderTerms(False, "MKT"), OPTION, quote(bid=0.0), arrival=True).price is None


def test_marketable_limit_gets_the_quote_resting_limit_gets_its_limit() -> None:
    buy = OrderTerms(True, "LMT", limit=D("100.50"))
    assert decide(buy, STOCK, quote(), arrival=True).price == D("100.02")
    assert decide(buy, STOCK, quote(), arrival=False).price == D("100.50")
    assert decide(OrderTerms(True, "LMT", limit=D("99.99")), STOCK, quote(), arrival=True).price is None
    sell = OrderTerms(False, "LMT", limit=D("100.00"))
    assert decide(sell, STOCK, quote(), arrival=True).price == D("100.0")
    assert decide(OrderTerms(False, "LMT", limit=D("100.01")), STOCK, quote(), arrival=False).price is None


def test_stops_trigger_on_the_last_trade_then_fill_like_market_orders() -> None:
    sell_stop = OrderTerms(False, "STP", stop=D("99.50"))
    waiting = decide(sell_stop, STOCK, quote(last=99.60), arrival=True)
    assert waiting.price is None and not waiting.triggered
    hit = decide(sell_stop, STOCK, quote(bid=99.40, ask=99.42, last=99.45), arrival=False)
    assert hit.triggered and hit.price == D("99.4")
    buy_stop_limit = OrderTerms(True, "STP LMT", limit=D("101.05"), stop=D("101.00"))
    gap = decide(buy_stop_limit, STOCK, quote(bid=101.10, ask=101.12, last=101.11), arrival=False)
    assert gap.triggered and gap.price is None  # triggered, but the ask is above the limit: it now rests
    later = decide(
        OrderTerms(True, "STP LMT", limit=D("101.05"), stop=D("101.00"), triggered=True),
        STOCK,
        quote(bid=101.00, ask=101.04, last=101.02),
        arrival=False,
    )
    assert later.price == D("101.05")


def test_a_trailing_stop_follows_the_market_and_never_loosens() -> None:
    terms = OrderTerms(False, "TRAIL", trail_amount=D("1.00"))
    first = decide(terms, STOCK, quote(last=100.00), arrival=True)
    assert first.stop == D("99.0") and first.price is None
    up = decide(OrderTerms(False, "TRAIL", stop=first.stop, trail_amount=D("1.00")), STOCK, quote(last=102.0), True)
    assert up.stop == D("101.0")
    down = decide(OrderTerms(False, "TRAIL", stop=up.stop, trail_amount=D("1.00")), STOCK, quote(last=101.5), True)
    assert down.stop == D("101.0") and down.price is None
    hit = decide(
        OrderTerms(False, "TRAIL", stop=down.stop, trail_amount=D("1.00")),
        STOCK,
        quote(bid=100.9, ask=100.92, last=100.95),
        arrival=False,
    )
    assert hit.triggered and hit.price == D("100.9")
    percent = decide(OrderTerms(True, "TRAIL", trail_percent=D("2")), STOCK, quote(last=100.0), True)
    assert percent.stop == D("102.00")


def test_commissions_are_ibkr_fixed() -> None:
    assert commission(STOCK, D(10), D("600"), D("0.005"), D("0.65")) == D("1.00")  # the minimum
    assert commission(STOCK, D(1000), D("600"), D("0.005"), D("0.65")) == D("5.00")
    assert commission(STOCK, D(1000), D("0.50"), D("0.005"), D("0.65")) == D("5.00")  # 1% of $500 is 5
    assert commission(STOCK, D(10000), D("0.05"), D("0.005"), D("0.65")) == D("5.00")  # capped at 1% of value
    assert commission(OPTION, D(1), D("3.20"), D("0.005"), D("0.65")) == D("1.00")
    assert commission(OPTION, D(10), D("3.20"), D("0.005"), D("0.65")) == D("6.50")


@pytest.mark.parametrize(
    ("action", "qty", "kind", "tif", "limit", "aux", "contract", "fragment"),
    [
        ("BUY", D(0), "LMT", "DAY", D(1), None, STOCK, "greater than zero"),
        ("BUY", None, "MKT", "", None, None, STOCK, "greater than zero"),
        ("HOLD", D(1), "MKT", "", None, None, STOCK, "Invalid action"),
        ("BUY", D("1.5"), "MKT", "", None, None, STOCK, "Fractional"),
        ("BUY", D(1), "LMT", "DAY", None, None, STOCK, "limit price"),
        ("BUY", D(1), "STP", "DAY", None, None, STOCK, "stop price"),
        ("BUY", D(1), "TRAIL", "DAY", None, None, STOCK, "trailing"),
        ("BUY", D(1), "MOC", "DAY", None, None, STOCK, "Unsupported order type"),
        ("BUY", D(1), "MKT", "GTX", None, None, STOCK, "time in force"),
        ("BUY", D(1), "MKT", "DAY", None, None, INDEX, "not tradable"),
        ("BUY", D(1), "MKT", "DAY", None, None, None, "No security definition"),
    ],
)
def test_invalid_orders_are_rejected(
    action: str, qty: Decimal | None, kind: str, tif: str, limit: Decimal | None, aux: Decimal | None,
    contract: object, fragment: str,
) -> None:  # fmt: skip
    reason = rejection(action, qty, kind, tif, limit, aux, None, contract)  # type: ignore[arg-type]
    assert reason is not None and fragment in reason


def test_valid_orders_pass_and_tick_conformance() -> None:
    assert rejection("SELL", D(5), "STP LMT", "GTC", D("99"), D("99.5"), None, STOCK) is None
    assert not off_tick(STOCK, D("600.01")) and off_tick(STOCK, D("600.015"))
    assert not off_tick(STOCK, D("0.5005")) and not off_tick(STOCK, None)

"""Position math on IB's conventions, contract keys, and the ledger-vs-broker comparison (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.execution.positions import (
    BrokerPosition,
    ContractKey,
    LedgerFill,
    Position,
    PositionBook,
    PositionStoreError,
    compare,
    ready_fills,
)

SPY = ContractKey.of("SPY", "STK")
CALL = ContractKey.of("SPY", "OPT", "2026-01-16", "450", "C")
NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
D = Decimal


def _fill(
    entry_ms: int,
    quantity: int,
    price: str = "100",
    commission: str | None = "1",
    key: ContractKey = SPY,
    account: str = "DU1",
    day: str = "20260105",
) -> LedgerFill:
    fee = None if commission is None else D(commission)
    return LedgerFill(day, f"{entry_ms}-0", f"e{entry_ms}", "o1", account, key, quantity, D(price), fee)


# --------------------------------------------------------------------------- position math
def test_partial_fills_average_in_their_commissions() -> None:
    p = Position(SPY).apply(3, D("100"), D("1")).apply(2, D("101"), D("1"))
    assert p.quantity == 5
    assert p.avg_cost == (D(300) + 1 + 202 + 1) / 5 == D("100.8")
    assert p.realized_pnl == 0 and p.commissions == 2 and p.fills == 2


def test_a_partial_sale_realizes_against_the_average_cost_net_of_its_commission() -> None:
    p = Position(SPY).apply(5, D("100.8"), D("0")).apply(-2, D("102"), D("1"))
    assert p.quantity == 3
    assert p.avg_cost == D("100.8")  # a reduction leaves the average cost of the rest alone
    assert p.realized_pnl == 2 * (D("102") - D("100.8")) - 1 == D("1.4")
    closed = p.apply(-3, D("99"), D("1"))
    assert closed.quantity == 0 and closed.avg_cost == 0
    assert closed.realized_pnl == D("1.4") + 3 * (D("99") - D("100.8")) - 1


def test_selling_through_zero_opens_a_short_at_the_execution_price_net_of_its_fee_share() -> None:
    p = Position(SPY).apply(10, D("100"), D("0")).apply(-15, D("110"), D("3"))
    assert p.quantity == -5
    assert p.realized_pnl == 10 * 10 - 2  # two thirds of the fee belong to the closing 10
    assert p.avg_cost == D("110") - D("1") / 5  # a short's average cost is net proceeds per unit


def test_buying_through_zero_from_a_short() -> None:
    short = Position(SPY).apply(-4, D("50"), D("1"))
    assert short.avg_cost == (D(200) - 1) / 4 == D("49.75")
    p = short.apply(6, D("45"), D("1.5"))
    assert p.quantity == 2
    assert p.realized_pnl == 4 * (D("49.75") - 45) - 1 == D("18")
    assert p.avg_cost == D("45") + D("0.5") / 2


def test_options_carry_the_multiplier_in_the_average_cost() -> None:
    p = Position(CALL).apply(2, D("1.50"), D("1.30"))
    assert p.avg_cost == (2 * D("150") + D("1.30")) / 2 == D("150.65")
    closed = p.apply(-2, D("2.00"), D("1.30"))
    assert closed.realized_pnl == 2 * (D("200") - D("150.65")) - D("1.30")


@pytest.mark.parametrize(
    ("quantity", "price", "commission", "match"),
    [(0, "1", "0", "zero quantity"), (1, "0", "0", "price must be positive"), (1, "1", "-1", "must not be negative")],
)
def test_impossible_executions_are_refused(quantity: int, price: str, commission: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Position(SPY).apply(quantity, D(price), D(commission))


_trades = st.lists(
    st.tuples(
        st.integers(min_value=-50, max_value=50).filter(bool),
        st.decimals(min_value="0.01", max_value="500", places=2),
        st.decimals(min_value="0", max_value="5", places=2),
    ),
    min_size=1,
    max_size=30,
)


@given(_trades, st.sampled_from([SPY, CALL]))
def test_cash_flows_equal_realized_pnl_less_the_open_cost_basis(
    trades: list[tuple[int, Decimal, Decimal]], key: ContractKey
) -> None:
    """Money in and out always adds up: cash = realized P&L - quantity × average cost."""
    p = Position(key)
    cash = D(0)
    for quantity, price, fee in trades:
        p = p.apply(quantity, price, fee)
        cash -= quantity * price * key.multiplier + fee
    assert p.quantity == sum(q for q, _, _ in trades)
    assert p.commissions == sum(f for _, _, f in trades)
    assert abs(cash - (p.realized_pnl - p.quantity * p.avg_cost)) < D("1e-15") * (1 + abs(cash))
    if p.quantity == 0:
        assert p.avg_cost == 0


def test_position_documents_round_trip_and_malformed_ones_name_their_source() -> None:
    p = Position(CALL).apply(-3, D("2.35"), D("1.95"))
    assert Position.from_doc(p.doc(), "test") == p
    with pytest.raises(PositionStoreError, match="positions:snapshot:DU1 SPY:STK"):
        Position.from_doc({"symbol": "SPY", "quantity": "x"}, "positions:snapshot:DU1 SPY:STK")


# --------------------------------------------------------------------------- contract keys
@dataclass
class _IbContract:
    """The fields of an ib_insync ``Contract`` that a key reads (ib_insync's names)."""

    symbol: str
    secType: str
    lastTradeDateOrContractMonth: str = ""
    strike: float = 0.0
    right: str = ""


def test_ledger_and_broker_name_the_same_contract_alike() -> None:
    ledger = ContractKey.from_order(
        {"symbol": "SPY", "sec_type": "OPT", "expiry": "2026-01-16", "strike": "450.0", "right": "C"}
    )
    broker = ContractKey.from_contract(_IbContract("SPY", "OPT", "20260116", 450.0, "C"))
    assert ledger == broker == CALL
    assert CALL.text == "SPY:OPT:20260116:450:C"
    assert ContractKey.from_order({"symbol": "SPY", "side": "buy"}) == SPY
    assert ContractKey.from_contract(_IbContract("SPY", "STK", "", 0.0, "?")).text == "SPY:STK"
    assert ContractKey.of("SPX", "OPT", "20260116", 5012.5, "P").text == "SPX:OPT:20260116:5012.5:P"


def test_an_option_key_needs_expiry_strike_and_right() -> None:
    with pytest.raises(PositionStoreError, match="needs expiry, strike and right"):
        ContractKey.of("SPY", "OPT", "20260116", "450", None)
    with pytest.raises(PositionStoreError, match="without a symbol"):
        ContractKey.of("", "STK")


# --------------------------------------------------------------------------- folding fills in
def test_a_fill_without_commission_holds_back_itself_and_every_later_fill_for_a_while() -> None:
    arrived = int((NOW - timedelta(seconds=2)).timestamp() * 1000)
    old = int((NOW - timedelta(seconds=60)).timestamp() * 1000)
    fills = [
        _fill(old, 1),
        _fill(old + 1, 1, commission=None),
        _fill(arrived, 1, commission=None),
        _fill(arrived + 1, 1),
    ]
    ready, waiting = ready_fills(fills, NOW, commission_wait_s=5.0)
    assert ready == fills[:2]  # the old one without a commission has waited long enough
    assert waiting == fills[2:]
    assert ready_fills(fills, NOW + timedelta(seconds=10), 5.0) == (fills, [])


def test_the_book_moves_its_cursor_per_day_stream_and_skips_unattributable_fills() -> None:
    book = PositionBook()
    book.apply(_fill(1000, 3))
    book.apply(_fill(1001, -1, price="101"))
    orphan = LedgerFill("20260106", "2000-0", "", "", "", ContractKey("?"), 0, D(1), D(0), attributable=False)
    assert book.apply(orphan) is None
    assert book.cursor == {"20260105": "1001-0", "20260106": "2000-0"}
    assert book.of("DU1")[SPY].quantity == 2
    assert book.of("DU2") == {}


# --------------------------------------------------------------------------- comparison
def _broker(quantity: str, avg: str = "101", key: ContractKey = SPY, account: str = "DU1") -> BrokerPosition:
    return BrokerPosition(account, key, D(quantity), D(avg))


def test_equal_books_reconcile_without_mismatch() -> None:
    book = {SPY: Position(SPY).apply(3, D("100"), D("3"))}
    result = compare("DU1", book, [_broker("3.0")], NOW)
    assert result.ok and result.contracts == 1 and not result.cost_drifts


def test_every_quantity_difference_is_a_mismatch_with_both_quantities() -> None:
    book = {SPY: Position(SPY).apply(3, D("100"), D("0")), CALL: Position(CALL).apply(1, D("2"), D("0"))}
    qqq = ContractKey.of("QQQ", "STK")
    broker = [_broker("7", "100"), _broker("4", "380", qqq), _broker("9", "1", SPY, account="DU2")]
    result = compare("DU1", book, broker, NOW)
    got = {(d.contract, d.ledger_quantity, d.broker_quantity) for d in result.mismatches}
    assert got == {("SPY:STK", 3, D(7)), ("QQQ:STK", 0, D(4)), ("SPY:OPT:20260116:450:C", 1, D(0))}
    assert next(d for d in result.mismatches if d.contract == "SPY:STK").difference == -4
    assert result.contracts == 3  # the other account's position is not this account's business


def test_fills_awaiting_a_commission_count_for_quantities_only() -> None:
    book = {SPY: Position(SPY).apply(3, D("100"), D("0"))}
    result = compare("DU1", book, [_broker("5", "200")], NOW, [_fill(1, 2, commission=None)])
    assert result.ok and result.pending_fills == 1 and not result.cost_drifts


def test_a_different_average_cost_is_a_drift_not_a_mismatch() -> None:
    book = {SPY: Position(SPY).apply(3, D("100"), D("3"))}
    assert not compare("DU1", book, [_broker("3", "101.00000001")], NOW).cost_drifts  # float noise
    result = compare("DU1", book, [_broker("3", "100.5")], NOW)
    assert result.ok and [d.contract for d in result.cost_drifts] == ["SPY:STK"]


def test_flat_on_both_sides_is_not_compared() -> None:
    flat = Position(SPY).apply(3, D("100"), D("0")).apply(-3, D("101"), D("0"))
    assert compare("DU1", {SPY: flat}, [], NOW).contracts == 0

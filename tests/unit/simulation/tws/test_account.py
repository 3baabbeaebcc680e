"""Account arithmetic: average cost with commissions, realized P&L, marks and daily P&L."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quanticity.simulation.tws.account import SimAccount, account_values, summary_values
from quanticity.simulation.tws.config import TwsSimConfig
from tests.unit.simulation.tws.samples import OPTION, STOCK, quote

D = Decimal


def test_average_cost_and_realized_pnl_follow_ib() -> None:
    acct = SimAccount(TwsSimConfig(starting_cash=D(100000)))
    assert acct.apply_fill(STOCK, D(100), D("100"), D("1")) is None
    pos = acct.positions[STOCK.con_id]
    assert pos.avg_cost == D("100.01")
    acct.apply_fill(STOCK, D(100), D("102"), D("1"))
    assert pos.avg_cost == D("101.01")
    realized = acct.apply_fill(STOCK, D(-50), D("103"), D("1"))
    assert realized == D(50) * (D("103") - D("101.01")) - D("1")
    flipped = acct.apply_fill(STOCK, D(-200), D("104"), D("2"))
    assert pos.quantity == D(-50) and flipped is not None
    assert pos.avg_cost == D("104") - D("0.5") / D(50)  # proceeds per share less the opening commission
    assert acct.cash == D(100000) - D(100 * 100 + 1) - D(100 * 102 + 1) + D(50 * 103 - 1) + D(200 * 104 - 2)


def test_valuation_marks_at_the_midpoint_with_the_multiplier() -> None:
    acct = SimAccount(TwsSimConfig(starting_cash=D(10000)))
    acct.apply_fill(OPTION, D(2), D("3.00"), D("1.30"))
    v = acct.value({OPTION.con_id: quote(bid=3.10, ask=3.20, last=3.0, close=2.5)}, day=0)
    h = v.holding(OPTION.con_id)
    assert h is not None
    assert h.mark == pytest.approx(3.15) and h.market_value == pytest.approx(630.0)
    assert h.avg_cost == pytest.approx(300.65) and h.unrealized == pytest.approx(630.0 - 601.3)
    assert h.daily == pytest.approx(h.unrealized)  # opened today: daily P&L is the unrealized P&L
    assert v.net_liquidation == pytest.approx(10000 - 601.3 + 630.0)
    assert v.equity_with_loan == pytest.approx(v.net_liquidation - 630.0)  # long options have no loan value


def test_daily_pnl_rolls_at_the_next_trading_day() -> None:
    acct = SimAccount(TwsSimConfig())
    acct.apply_fill(STOCK, D(10), D("100"), D("1"))
    acct.value({STOCK.con_id: quote(bid=100.0, ask=100.02)}, day=5)
    v = acct.value({STOCK.con_id: quote(bid=104.0, ask=104.02, close=103.0)}, day=6)
    h = v.holding(STOCK.con_id)
    assert h is not None and h.daily == pytest.approx(10 * (104.01 - 103.0))


def test_account_values_and_summary_are_consistent() -> None:
    acct = SimAccount(TwsSimConfig(starting_cash=D(50000)))
    acct.apply_fill(STOCK, D(100), D("100"), D("1"))
    v = acct.value({STOCK.con_id: quote(bid=101.0, ask=101.02)}, day=0)
    values = {(k, c): x for k, x, c in account_values(v, "DU1")}
    assert float(values[("NetLiquidation", "USD")]) == pytest.approx(50000 - 10001 + 10101)
    assert float(values[("InitMarginReq", "USD")]) == pytest.approx(0.5 * 10101)
    assert float(values[("BuyingPower", "USD")]) == pytest.approx(4 * (v.net_liquidation - 0.5 * 10101), abs=0.01)
    tags = [t for t, _, _ in summary_values(v, "DU1", ["NetLiquidation", "AccountType", "Nonsense", "Cushion"])]
    assert tags == ["NetLiquidation", "AccountType", "Cushion"]

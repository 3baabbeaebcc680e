"""The simulated account: cash, positions with average cost, realized and unrealized P&L.

Average cost follows IB: per unit, multiplier included, commissions folded in (added
for longs, subtracted for shorts). Fills settle cash at once. Positions are marked at
the quote's midpoint (the last trade without one). Daily P&L is mark-to-market against
the previous close for what was held at the start of the trading day, plus the cash
flows of today's fills: ``value now - (start qty * close * multiplier) - cash spent today``.

Margin (Reg T, simplified): 50% initial / 25% maintenance on stock value; short options
carry their value plus 20% of strike notional; long options have no loan value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.fill_model import to_decimal
from quanticity.simulation.tws.quotes import Quote

__all__ = ["Holding", "Position", "SimAccount", "Valuation"]

_ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """One contract held (quantity may be 0 after closing; realized P&L stays)."""

    contract: SimContract
    quantity: Decimal = _ZERO
    avg_cost: Decimal = _ZERO
    realized: Decimal = _ZERO
    realized_today: Decimal = _ZERO
    day: int = -1
    day_start_qty: Decimal = _ZERO
    day_cash: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class Holding:
    """A position marked to market."""

    contract: SimContract
    quantity: float
    mark: float
    market_value: float
    avg_cost: float
    unrealized: float
    realized: float
    daily: float


@dataclass(frozen=True, slots=True)
class Valuation:
    """The account marked to market at one instant."""

    cash: float
    holdings: tuple[Holding, ...]
    net_liquidation: float
    stock_value: float
    option_value: float
    gross_position_value: float
    init_margin: float
    maint_margin: float
    equity_with_loan: float
    unrealized: float
    realized: float
    daily: float

    def holding(self, con_id: int) -> Holding | None:
        """The holding of ``con_id``, if any."""
        return next((h for h in self.holdings if h.contract.con_id == con_id), None)


class SimAccount:
    """The one simulated account every client trades.

    Args:
        config: starting cash and the account code.
    """

    def __init__(self, config: TwsSimConfig) -> None:
        self.code = config.account
        self.cash = config.starting_cash
        self.positions: dict[int, Position] = {}

    def apply_fill(self, contract: SimContract, signed_qty: Decimal, price: Decimal, fee: Decimal) -> Decimal | None:
        """Settle one fill; returns the realized P&L when it reduced a position, else None."""
        pos = self.positions.setdefault(contract.con_id, Position(contract))
        mult = to_decimal(contract.multiplier_value)
        unit = price * mult
        q, d = pos.quantity, signed_qty
        realized: Decimal | None = None
        if q == 0 or (q > 0) == (d > 0):
            new_q = q + d
            cost = abs(q) * pos.avg_cost + abs(d) * unit + (fee if new_q > 0 else -fee)
            pos.avg_cost = cost / abs(new_q)
        else:
            closed = min(abs(d), abs(q))
            fee_closed = fee * closed / abs(d)
            realized = closed * ((unit - pos.avg_cost) if q > 0 else (pos.avg_cost - unit)) - fee_closed
            new_q = q + d
            if abs(d) > abs(q):
                rest = abs(d) - closed
                pos.avg_cost = unit + (fee - fee_closed) / rest * (1 if new_q > 0 else -1)
            elif new_q == 0:
                pos.avg_cost = _ZERO
            pos.realized += realized
            pos.realized_today += realized
        pos.quantity = new_q
        pos.day_cash += d * unit + fee
        self.cash -= d * unit + fee
        return realized

    def _roll(self, pos: Position, day: int) -> None:
        if pos.day != day:
            if pos.day >= 0:  # a new trading day: today's P&L starts from the position held now
                pos.realized_today = _ZERO
                pos.day_cash = _ZERO
                pos.day_start_qty = pos.quantity
            pos.day = day

    def value(self, quotes: Mapping[int, Quote], day: int) -> Valuation:
        """Mark every position with ``quotes`` (by conId) on trading day ``day``."""
        holdings = []
        stock = option = gross = init = maint = long_options = 0.0
        for pos in self.positions.values():
            self._roll(pos, day)
            c = pos.contract
            mult = c.multiplier_value
            q = quotes.get(c.con_id)
            mark = q.mark if q is not None and q.mark is not None else None
            qty = float(pos.quantity)
            avg = float(pos.avg_cost)
            if mark is None:
                mark = avg / mult if qty else 0.0
            value = qty * mark * mult
            unrealized = value - qty * avg
            close = q.close if q is not None and q.close is not None else mark
            daily = value - float(pos.day_start_qty) * close * mult - float(pos.day_cash)
            holdings.append(Holding(c, qty, mark, value, avg, unrealized, float(pos.realized_today), daily))
            gross += abs(value)
            if c.sec_type == "OPT":
                option += value
                if qty < 0:
                    short = abs(value) + 0.2 * c.strike * mult * abs(qty)
                    init += short
                    maint += short
                else:
                    long_options += value
            else:
                stock += value
                init += 0.5 * abs(value)
                maint += 0.25 * abs(value)
        cash = float(self.cash)
        nlv = cash + sum(h.market_value for h in holdings)
        return Valuation(
            cash=cash,
            holdings=tuple(holdings),
            net_liquidation=nlv,
            stock_value=stock,
            option_value=option,
            gross_position_value=gross,
            init_margin=init,
            maint_margin=maint,
            equity_with_loan=nlv - long_options,
            unrealized=sum(h.unrealized for h in holdings),
            realized=sum(h.realized for h in holdings),
            daily=sum(h.daily for h in holdings),
        )

    def open_positions(self) -> Iterable[Position]:
        """Positions with a non-zero quantity."""
        return (p for p in self.positions.values() if p.quantity != 0)


def _money(x: float) -> str:
    return f"{x:.2f}"


def account_values(v: Valuation, account: str) -> list[tuple[str, str, str]]:
    """(key, value, currency) rows for updateAccountValue / accountUpdateMulti."""
    available = v.equity_with_loan - v.init_margin
    excess = v.equity_with_loan - v.maint_margin
    usd = [
        ("NetLiquidation", v.net_liquidation), ("TotalCashValue", v.cash), ("SettledCash", v.cash),
        ("AccruedCash", 0.0), ("BuyingPower", 4.0 * max(available, 0.0)), ("EquityWithLoanValue", v.equity_with_loan),
        ("PreviousDayEquityWithLoanValue", v.equity_with_loan - v.daily),
        ("GrossPositionValue", v.gross_position_value),
        ("RegTEquity", v.equity_with_loan), ("RegTMargin", v.init_margin), ("SMA", max(available, 0.0)),
        ("InitMarginReq", v.init_margin), ("MaintMarginReq", v.maint_margin), ("AvailableFunds", available),
        ("ExcessLiquidity", excess), ("FullInitMarginReq", v.init_margin), ("FullMaintMarginReq", v.maint_margin),
        ("FullAvailableFunds", available), ("FullExcessLiquidity", excess), ("StockMarketValue", v.stock_value),
        ("OptionMarketValue", v.option_value), ("UnrealizedPnL", v.unrealized), ("RealizedPnL", v.realized),
        ("LookAheadInitMarginReq", v.init_margin), ("LookAheadMaintMarginReq", v.maint_margin),
        ("LookAheadAvailableFunds", available), ("LookAheadExcessLiquidity", excess),
    ]  # fmt: skip
    rows = [(k, _money(x), "USD") for k, x in usd]
    rows += [
        ("CashBalance", _money(v.cash), "BASE"),
        ("CashBalance", _money(v.cash), "USD"),
        ("TotalCashBalance", _money(v.cash), "BASE"),
        ("NetLiquidationByCurrency", _money(v.net_liquidation), "BASE"),
        ("UnrealizedPnL", _money(v.unrealized), "BASE"),
        ("RealizedPnL", _money(v.realized), "BASE"),
        ("ExchangeRate", "1.00", "USD"),
        ("Currency", "USD", "USD"),
    ]
    cushion = excess / v.net_liquidation if v.net_liquidation else 0.0
    leverage = v.gross_position_value / v.net_liquidation if v.net_liquidation else 0.0
    rows += [
        ("AccountCode", account, ""),
        ("AccountType", "INDIVIDUAL", ""),
        ("AccountReady", "true", ""),
        ("Cushion", f"{cushion:.6f}", ""),
        ("Leverage-S", f"{leverage:.2f}", ""),
        ("DayTradesRemaining", "-1", ""),
    ]
    return rows


def summary_values(v: Valuation, account: str, tags: Iterable[str]) -> list[tuple[str, str, str]]:
    """(tag, value, currency) rows for reqAccountSummary, in the order asked."""
    rows: dict[str, tuple[str, str]] = {}
    for key, value, currency in account_values(v, account):
        if currency != "BASE":
            rows.setdefault(key, (value, currency))
    rows["Leverage"] = rows.pop("Leverage-S", ("0.00", ""))
    rows["HighestSeverity"] = ("0", "")
    rows["DayTradesRemainingT+1"] = rows["DayTradesRemainingT+2"] = rows["DayTradesRemainingT+3"] = ("-1", "")
    rows["DayTradesRemainingT+4"] = ("-1", "")
    rows["LookAheadNextChange"] = ("0", "")
    out = []
    for tag in tags:
        tag = tag.strip()
        if tag in rows and tag != "Currency":
            value, currency = rows[tag]
            out.append((tag, value, currency))
    return out

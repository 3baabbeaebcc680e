"""Contracts: underlyings, option chains, expiry buckets, ATM strikes and tick-size rules.

Pure selection logic plus the few ``ib_insync`` requests that feed it
(``qualifyContractsAsync``, ``reqSecDefOptParamsAsync``). SPX is an index on CBOE; its
daily (0DTE/1DTE) options trade under the ``SPXW`` trading class.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import partial
from typing import Any, Literal, TypeVar

import structlog
from ib_insync import IB, Contract, Index, Option, Stock

from quanticity.errors import QuanticityError
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.pacing import Pace, no_pacing
from quanticity.ibkr.settings import OptionBucket

INDEX_SYMBOLS = frozenset({"SPX", "VIX", "NDX", "RUT", "XSP"})
# Option classes quoted in pennies below $3 and nickels above (the Penny Interval Program);
# SPY, QQQ and IWM quote in pennies at every price.
ALL_PENNY_CLASSES = frozenset({"SPY", "QQQ", "IWM"})
PENNY_PROGRAM = frozenset(
    {"AAPL", "MSFT", "GOOGL", "AMZN", "META", "NVDA", "TSLA", "AMD", "NFLX", "DIA", "XLF", "SPXW", "XSP"}
)


log = structlog.get_logger(__name__)
T = TypeVar("T")
#: How many times a request TWS leaves unanswered is sent before giving up on the connection.
REQUEST_ATTEMPTS = 3


class ContractError(QuanticityError):
    """A contract that TWS does not know, or a chain with nothing to select."""


class RequestUnanswered(ConnectionError):
    """TWS answered none of ``REQUEST_ATTEMPTS`` tries of a request within the timeout.

    A ``ConnectionError``: the caller treats it as a connection that stopped answering
    (subscribing again once the connection is known to be good).
    """


async def answered(
    request: Callable[[], Awaitable[T]],
    what: str,
    *,
    pace: Pace,
    cost: int,
    timeout_s: float | None,
    metrics: IbkrMetrics | None = None,
) -> T:
    """``request()``'s answer, sending it again when TWS leaves it unanswered for ``timeout_s``
    (``None``: wait as long as it takes, one try).

    TWS drops a message over its rate (error 100 without a request id, so nothing says
    which one) and never answers it: without a timeout the caller would wait forever.
    Each try takes ``cost`` from the pacing budget first; a timeout is logged and counted
    (``ibkr_error_events_total{code="unanswered"}``).

    Raises:
        RequestUnanswered: no answer to any of ``REQUEST_ATTEMPTS`` tries.
    """
    for attempt in range(1, REQUEST_ATTEMPTS + 1):
        await pace(cost)
        try:
            async with asyncio.timeout(timeout_s):
                return await request()
        except TimeoutError:
            if metrics is not None:
                metrics.error_events.labels("unanswered").inc()
            log.warning(
                "ibkr_request_unanswered",
                request=what,
                attempt=attempt,
                attempts=REQUEST_ATTEMPTS,
                timeout_s=timeout_s,
                detail="TWS drops a message over its rate without answering it; sending it again",
            )
    raise RequestUnanswered(f"TWS answered no {what} in {REQUEST_ATTEMPTS} tries of {timeout_s:g} s each")


def underlying_contract(symbol: str) -> Contract:
    """The contract of an underlying: an index on CBOE (SPX, VIX…) or a stock/ETF on SMART."""
    if symbol in INDEX_SYMBOLS:
        return Index(symbol, "CBOE", "USD")
    return Stock(symbol, "SMART", "USD")


def depth_contract(symbol: str, exchange: str) -> Contract:
    """A stock on one explicit exchange, as market depth requires (never SMART)."""
    if exchange.upper() == "SMART":
        raise ContractError(f"depth for {symbol}: an explicit exchange is required, not SMART")
    return Stock(symbol, exchange, "USD")


QUALIFY_CHUNK = 10


async def qualify(
    ib: IB,
    contracts: Sequence[Contract],
    pace: Pace = no_pacing,
    *,
    timeout_s: float | None = None,
    metrics: IbkrMetrics | None = None,
) -> list[Contract]:
    """Qualify ``contracts`` in place (conIds filled in), ``QUALIFY_CHUNK`` requests at a time.

    Each contract is one ``reqContractDetails``; ``pace`` is awaited for every one, so a
    whole chain never bursts past TWS's message budget (dropped requests never answer).
    With ``timeout_s``, a chunk left unanswered that long is asked again (``answered``).

    Raises:
        ContractError: TWS does not know one of them (error 200) or it is ambiguous.
        RequestUnanswered: with ``timeout_s``, TWS answered no try of a chunk.
    """
    done: list[Contract | None] = []
    for start in range(0, len(contracts), QUALIFY_CHUNK):
        chunk = contracts[start : start + QUALIFY_CHUNK]
        done.extend(
            await answered(
                partial(ib.qualifyContractsAsync, *chunk),
                "reqContractDetails",
                pace=pace,
                cost=len(chunk),
                timeout_s=timeout_s,
                metrics=metrics,
            )
        )
    known = {id(c) for c in done if c is not None and c.conId}
    missing = [c for c in contracts if id(c) not in known]
    if missing:
        names = ", ".join(
            f"{c.secType} {c.symbol} {c.lastTradeDateOrContractMonth} {c.strike or ''}{c.right}" for c in missing
        )
        raise ContractError(
            f"TWS could not qualify: {names}",
            operator_action="check the symbols in config/ibkr.yaml and the account's market data permissions",
        )
    return list(contracts)


@dataclass(frozen=True)
class ChainParams:
    """One option chain's parameters from ``reqSecDefOptParams``."""

    exchange: str
    trading_class: str
    multiplier: str
    expirations: tuple[date, ...]
    strikes: tuple[float, ...]


def parse_expiry(text: str) -> date:
    """``YYYYMMDD`` → date."""
    return datetime.strptime(text[:8], "%Y%m%d").date()  # noqa: DTZ007 - a calendar date, no zone


def chain_params(raw: Sequence[Any]) -> list[ChainParams]:
    """``OptionChain`` objects of ``ib_insync`` → sorted :class:`ChainParams`."""
    return [
        ChainParams(
            exchange=c.exchange,
            trading_class=c.tradingClass,
            multiplier=str(c.multiplier),
            expirations=tuple(sorted(parse_expiry(e) for e in c.expirations)),
            strikes=tuple(sorted(float(s) for s in c.strikes)),
        )
        for c in raw
    ]


def pick_chain(chains: Sequence[ChainParams], today: date) -> ChainParams:
    """The chain to trade: SMART if listed, and the trading class with the nearest expiries.

    For SPX this picks ``SPXW`` (daily expiries) over the monthly ``SPX`` class.

    Raises:
        ContractError: no chain at all.
    """
    if not chains:
        raise ContractError("the option chain is empty: TWS returned no parameters")
    smart = [c for c in chains if c.exchange == "SMART"] or list(chains)

    def nearest(c: ChainParams) -> tuple[int, int]:
        future = [e for e in c.expirations if e >= today]
        return ((future[0] - today).days if future else 10_000, -len(c.expirations))

    return min(smart, key=nearest)


def select_expiries(
    expirations: Sequence[date], today: date, buckets: Sequence[OptionBucket], swing_dte: tuple[int, int] = (14, 45)
) -> dict[OptionBucket, date]:
    """The expiry of each bucket that the chain lists.

    ``0dte`` is today's expiry, ``1dte`` the next listed expiry within four calendar days
    (so Friday's 1DTE is Monday's), ``swing`` the expiry in the DTE window closest to 30
    days. A bucket with no such expiry is absent from the result.
    """
    chosen: dict[OptionBucket, date] = {}
    future = sorted(e for e in expirations if e >= today)
    if "0dte" in buckets and today in future:
        chosen["0dte"] = today
    after = [e for e in future if e > today]
    if "1dte" in buckets and after and (after[0] - today).days <= 4:
        chosen["1dte"] = after[0]
    if "swing" in buckets:
        lo, hi = swing_dte
        window = [e for e in future if lo <= (e - today).days <= hi]
        if window:
            chosen["swing"] = min(window, key=lambda e: abs((e - today).days - 30))
    return chosen


def select_strikes(strikes: Sequence[float], spot: float, each_side: int) -> list[float]:
    """The strike nearest ``spot`` and ``each_side`` listed strikes on either side of it.

    Raises:
        ContractError: no strikes, or a spot that is not a positive number.
    """
    if not strikes:
        raise ContractError("no strikes listed")
    if not spot > 0:
        raise ContractError(f"cannot centre strikes on spot {spot!r}")
    ordered = sorted(strikes)
    i = bisect.bisect_left(ordered, spot)
    if i == len(ordered) or (i > 0 and spot - ordered[i - 1] <= ordered[i] - spot):
        i -= 1
    return ordered[max(i - each_side, 0) : i + each_side + 1]


def option_contracts(
    symbol: str,
    params: ChainParams,
    expiry: date,
    strikes: Sequence[float],
    rights: Sequence[Literal["C", "P"]] = ("C", "P"),
) -> list[Contract]:
    """Option contracts (SMART routed) for each strike and right of one expiry."""
    return [
        Option(symbol, f"{expiry:%Y%m%d}", strike, right, "SMART", tradingClass=params.trading_class, currency="USD")
        for strike in strikes
        for right in rights
    ]


def option_tick_size(trading_class: str, price: Decimal, sec_type: str = "OPT") -> Decimal:
    """Minimum price increment of an option (or a stock when ``sec_type`` is ``STK``).

    Stocks: $0.01 at or above $1, $0.0001 below. Options: SPY/QQQ/IWM $0.01 at every price;
    Penny Program classes $0.01 below $3 and $0.05 above; others $0.05 below $3 and $0.10 above.
    """
    if sec_type == "STK":
        return Decimal("0.01") if price >= 1 else Decimal("0.0001")
    if trading_class in ALL_PENNY_CLASSES:
        return Decimal("0.01")
    if trading_class in PENNY_PROGRAM:
        return Decimal("0.01") if price < 3 else Decimal("0.05")
    return Decimal("0.05") if price < 3 else Decimal("0.10")


def round_to_tick(price: Decimal, tick: Decimal, side: Literal["buy", "sell"]) -> Decimal:
    """``price`` on the tick grid, rounded away from a worse fill: down for a buy, up for a sell."""
    steps = (price / tick).to_integral_value(rounding=ROUND_FLOOR if side == "buy" else ROUND_CEILING)
    return steps * tick

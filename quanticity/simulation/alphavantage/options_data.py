"""Option functions: REALTIME_OPTIONS and HISTORICAL_OPTIONS.

SPX and SPXW (alphavantage.md §11 leaves index options uncertain): the simulator serves
``symbol=SPXW`` with the PM-settled SPXW contracts (dailies, weeklies, month-ends,
third Fridays), which is what one premium user reports working, and ``symbol=SPX``
with the AM-settled standard SPX monthlies and LEAPS only; both carry the requested
symbol in ``symbol`` and their own root in ``contractID``. NDX, RUT and VIX have no
simulated options: their chains are empty (``"data": []``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np

from quanticity.simulation.alphavantage import formats, messages
from quanticity.simulation.alphavantage.query import Query, Rejection, Reply
from quanticity.simulation.calendar import REGULAR_CLOSE_S, et_datetime, to_et
from quanticity.simulation.chains import OptionChainTable, with_junk_greeks

__all__ = ["historical_options", "realtime_options"]

_FIRST_HISTORY = date(2008, 1, 2)
_SNAPSHOT = time(15, 59)  # the end-of-day snapshot: one minute before the close, same-day expiries still live


def _chain(q: Query, symbol: str, at: datetime, expiration: date | None) -> OptionChainTable:
    if not q.market.is_listed(symbol):
        raise q.invalid()
    table = q.market.chain(symbol, at, expiration)
    if symbol == "SPX":  # the SPX root only; SPXW is asked for by its own symbol
        table = table.take(table.root == "SPX")
    contract = q.get("contract")
    if contract is not None:
        table = table.take(table.contract_id == contract.upper())
    if "empty_chain" in q.faults:
        table = table.take(np.zeros(len(table), dtype=bool))
    if "junk_greeks" in q.faults:
        table = with_junk_greeks(table, q.faults.fraction("junk_greeks"), q.faults.rng())
    return table


def realtime_options(q: Query) -> Reply:
    """REALTIME_OPTIONS: ``require_greeks``, ``expiration``, ``contract``, ``datatype``.

    Keys without the ``realtime_options`` entitlement get AlphaVantage's artificial sample.
    """
    symbol = q.symbol()
    greeks = q.flag("require_greeks", False)
    expiration = q.day("expiration")
    csv = q.csv
    if not q.plan.has("realtime_options"):
        raise Rejection(messages.options_sample(greeks))
    k, _ = q.market.calendar.session_second(q.now)
    session_day = q.market.calendar.day(k)
    if expiration is not None and expiration < session_day:
        raise q.invalid()
    table = _chain(q, symbol, q.now, expiration)
    quoted_day = to_et(table.as_of).date()  # the session its quotes are from: before the open, the last one
    return formats.options("Realtime Options", table, symbol, quoted_day, greeks, csv)


def historical_options(q: Query) -> Reply:
    """HISTORICAL_OPTIONS (premium): ``date`` (default: the previous session), ``expiration``, ``contract``.

    The snapshot is taken at 15:59 ET of ``date``; always with IV and Greeks. A date that
    is not a trading day, or precedes the simulated history, gives ``"data": []``.
    """
    q.require_premium()
    symbol = q.symbol()
    requested = q.day("date")
    expiration = q.day("expiration")
    csv = q.csv
    calendar = q.market.calendar
    if not q.market.is_listed(symbol):
        raise q.invalid()
    k, s = calendar.session_second(q.now)
    last_closed = calendar.day(k if s >= REGULAR_CLOSE_S else k - 1)
    today = to_et(q.now).date()
    snapshot_day = requested or calendar.day(calendar.index_on_or_before(today - timedelta(days=1)))
    if requested is not None and (requested < _FIRST_HISTORY or requested > last_closed):
        raise q.invalid()
    if snapshot_day < calendar.first or calendar.index(snapshot_day) is None:
        table = _chain(q, symbol, q.now, None)
        table = table.take(np.zeros(len(table), dtype=bool))
    else:
        table = _chain(q, symbol, et_datetime(snapshot_day, _SNAPSHOT), expiration)
    return formats.options("Historical Options", table, symbol, snapshot_day, True, csv)

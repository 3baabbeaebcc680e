"""Handlers of the market-data requests: contracts, L1, depth, tick-by-tick, bars, and small queries.

Each handler reads its message with a ``FieldReader`` (field layouts: tws.md §4.1 and the
client's ``client.py``), resolves the contract in a worker thread, and answers or
registers a subscription on the session. Error codes: 200 unknown or ambiguous
contract, 309 too many depth requests, 10092 depth not supported, 354/10167 market-data
entitlement, 321 invalid request, 162 no historical data.
"""

from __future__ import annotations

from datetime import time, timedelta

from quanticity.simulation.calendar import SESSION_SECONDS, et_datetime
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.bar_streams import HistoricalUpdates, RealtimeBars
from quanticity.simulation.tws.bars import DAY, BarRequest, BarRequestError, parse_bar_size, parse_duration, parse_end
from quanticity.simulation.tws.contract_details import MARKET_RULES, contract_data
from quanticity.simulation.tws.contracts import SimContract, price_increment
from quanticity.simulation.tws.depth import MAX_DEPTH_REACHED, DepthSubscription, depth_exchange_rows, depth_refusal
from quanticity.simulation.tws.market_feed import NOT_SUBSCRIBED, MarketDataSubscription, decide_data_type
from quanticity.simulation.tws.protocol import ContractQuery, FieldReader
from quanticity.simulation.tws.session import Handler, Session, tws_time
from quanticity.simulation.tws.tick_by_tick import TICK_BY_TICK_TYPES, TickByTickSubscription

__all__ = ["DATA_HANDLERS", "NO_SECURITY", "resolve_one"]

NO_SECURITY = "No security definition has been found for the request"


def _option_lookup(q: ContractQuery) -> bool:
    return q.sec_type == "OPT" or q.con_id >= 1_000_000_000


async def resolve_one(session: Session, q: ContractQuery, req_id: int, report: bool = True) -> SimContract | None:
    """The single contract ``q`` describes; error 200 (when ``report``) for none or several."""
    state = session.state
    now = state.now()
    found = await state.run(lambda: state.universe.resolve(q, now), option=_option_lookup(q))
    if len(found) == 1:
        return found[0]
    if report:
        text = NO_SECURITY if not found else f"The contract description specified for {q.symbol} is ambiguous."
        session.error(req_id, 200, text)
    return None


def _market_open(session: Session) -> bool:
    s = session.state.market.calendar.session_second(session.state.now())[1]
    return 0 < s < SESSION_SECONDS


# ------------------------------------------------------------------ contracts
async def req_contract_details(session: Session, r: FieldReader) -> None:
    """9: contractData for every match, then contractDataEnd; error 200 when nothing matches."""
    r.skip(1)
    req_id = r.req()
    q = r.contract()
    state = session.state
    now = state.now()
    found = await state.run(lambda: state.universe.resolve(q, now), option=_option_lookup(q))
    if not found:
        session.error(req_id, 200, NO_SECURITY)
        return
    session.send_many([*(contract_data(req_id, c, now) for c in found), m.contract_data_end(req_id)])


async def req_sec_def_opt_params(session: Session, r: FieldReader) -> None:
    """78: one 75 per exchange and trading class, then 76."""
    req_id = r.req()
    symbol, fut_fop_exchange = r.text().upper(), r.text().upper()
    state = session.state
    now = state.now()
    rows = await state.run(lambda: state.universe.option_parameters(symbol, now), option=True)
    if rows is None:
        session.error(req_id, 200, NO_SECURITY)
        return
    msgs = [m.sec_def_opt_param(req_id, *row) for row in rows if not fut_fop_exchange or row[0] == fut_fop_exchange]
    session.send_many([*msgs, m.sec_def_opt_param_end(req_id)])


async def req_market_rule(session: Session, r: FieldReader) -> None:
    """91: the price increments of a market rule id."""
    rule_id = r.integer(0)
    increments = MARKET_RULES.get(rule_id)
    if increments is None:
        session.error(-1, 321, f"Error validating request.-'91' : cause - unknown market rule id {rule_id}")
        return
    session.send(m.market_rule(rule_id, increments))


# ------------------------------------------------------------------ level 1
def _generic_ticks(text: str, req_id: int, session: Session) -> frozenset[int] | None:
    ticks = set()
    for token in text.replace(" ", "").split(","):
        if not token:
            continue
        if not token.isdigit():
            session.error(
                req_id, 321, f"Error validating request.-'bR' : cause - Incorrect generic tick list of {text}"
            )
            return None
        ticks.add(int(token))
    return frozenset(ticks)


async def req_mkt_data(session: Session, r: FieldReader) -> None:
    """1: a streaming subscription or a snapshot (ended by tickSnapshotEnd)."""
    r.skip(1)
    req_id = r.req()
    q = r.contract()
    if q.sec_type == "BAG":
        r.skip(4 * r.integer(0))
    if r.flag():
        r.skip(3)  # delta-neutral contract
    generic_text, snapshot, regulatory = r.text(), r.flag(), r.flag()
    if req_id in session.quote_subs:
        session.error(req_id, 322, f"Error processing request.-'bM' : cause - Duplicate ticker id {req_id}")
        return
    generic = _generic_ticks(generic_text, req_id, session)
    contract = await resolve_one(session, q, req_id)
    if generic is None or contract is None:
        return
    state = session.state
    decision = decide_data_type(
        session.market_data_type, state.config.entitled(contract.symbol), _market_open(session), contract
    )
    if decision.notice is not None:
        session.error(req_id, *decision.notice)
    if decision.data_type is None:
        return
    delay = state.config.delayed_minutes * 60 if decision.delayed else 0
    sub = MarketDataSubscription(req_id, contract, generic, snapshot or regulatory, decision.data_type, delay)
    at = state.now() - timedelta(seconds=delay)
    quote = await state.quote(contract, at if delay else None)
    stats = None
    if sub.needs_stats:
        stats = await state.run(lambda: state.quotes.stats(contract, at), option=contract.sec_type == "OPT")
    min_tick = price_increment(contract, 1.0 if contract.sec_type == "OPT" else (quote.mark or 1.0))
    session.send_many([*sub.opening(min_tick), *sub.render(quote, stats)])
    if sub.snapshot:
        session.send(m.tick_snapshot_end(req_id))
    else:
        session.quote_subs[req_id] = sub


async def cancel_subscription(session: Session, r: FieldReader) -> None:
    """2, 11, 98: end a quote-driven subscription (no reply)."""
    if r.msg_id in (2, 11):
        r.skip(1)
    session.quote_subs.pop(r.req(), None)


async def req_market_data_type(session: Session, r: FieldReader) -> None:
    """59: the type later requests are served with."""
    r.skip(1)
    data_type = r.integer(1)
    if data_type not in (1, 2, 3, 4):
        session.error(-1, 321, f"Error validating request.-'59' : cause - invalid market data type {data_type}")
        return
    session.market_data_type = data_type


# ------------------------------------------------------------------ depth and tick-by-tick
async def req_mkt_depth(session: Session, r: FieldReader) -> None:
    """10: an L2 book on an explicit exchange."""
    r.skip(1)
    req_id = r.req()
    q = r.contract()
    rows, smart = r.integer(5), r.flag()
    limit = session.state.config.max_depth_subscriptions
    if sum(1 for s in session.quote_subs.values() if s.kind == "depth") >= limit:
        session.error(req_id, 309, MAX_DEPTH_REACHED.format(n=limit))
        return
    contract = await resolve_one(session, q, req_id)
    if contract is None:
        return
    refusal = depth_refusal(contract, q.exchange, smart)
    if refusal is not None:
        session.error(req_id, 10092, refusal)
        return
    state = session.state
    if not state.config.entitled(contract.symbol):
        session.error(req_id, 354, NOT_SUBSCRIBED.format(symbol=contract.symbol, exchange=q.exchange))
        return
    sub = DepthSubscription(req_id, contract, max(1, min(rows or state.config.depth_rows, state.config.depth_rows)))
    session.quote_subs[req_id] = sub
    session.send_many(sub.render(await state.quote(contract)))


async def req_tick_by_tick(session: Session, r: FieldReader) -> None:
    """97: Last, AllLast, BidAsk or MidPoint ticks."""
    req_id = r.req()
    q = r.contract()
    tick_type = r.text()
    if tick_type not in TICK_BY_TICK_TYPES:
        session.error(req_id, 321, f"Error validating request.-'bZ' : cause - invalid tick type {tick_type!r}")
        return
    contract = await resolve_one(session, q, req_id)
    if contract is None:
        return
    state = session.state
    if not state.config.entitled(contract.symbol):
        session.error(req_id, 354, NOT_SUBSCRIBED.format(symbol=contract.symbol, exchange=contract.exchange))
        return
    sub = TickByTickSubscription(req_id, contract, tick_type)
    session.quote_subs[req_id] = sub
    session.send_many(sub.render(await state.quote(contract)))


async def req_mkt_depth_exchanges(session: Session, r: FieldReader) -> None:
    """82: the exchanges that offer depth."""
    session.send(m.mkt_depth_exchanges(depth_exchange_rows()))


# ------------------------------------------------------------------ bars
async def req_historical_data(session: Session, r: FieldReader) -> None:
    """20: bars in one 17; with keepUpToDate, 90 updates follow."""
    req_id = r.req()
    q = r.contract()
    r.skip(1)  # includeExpired
    end_text, size_text, duration_text = r.text(), r.text(), r.text()
    use_rth, what, format_date = r.flag(), r.text().upper(), r.integer(1)
    if q.sec_type == "BAG":
        r.skip(4 * r.integer(0))
    keep_up_to_date = r.flag()
    state = session.state
    try:
        bar_s = parse_bar_size(size_text)
        amount, unit = parse_duration(duration_text)
        if keep_up_to_date and end_text.strip():
            raise BarRequestError(
                321, "Error validating request.-'bP' : cause - End date not supported with live updates"
            )
        end = parse_end(end_text, state.now())
    except BarRequestError as exc:
        session.error(req_id, exc.code, exc.text)
        return
    contract = await resolve_one(session, q, req_id)
    if contract is None:
        return
    req = BarRequest(contract, bar_s, what, use_rth, 2 if format_date == 2 else 1)
    try:
        start = await state.run(lambda: state.bars.start_of(req, end, amount, unit))
        bars = await state.run(lambda: state.bars.history(req, start, end))
    except BarRequestError as exc:
        session.error(req_id, exc.code, exc.text)
        return
    session.send(m.historical_data(req_id, tws_time(start), tws_time(end), bars))
    if keep_up_to_date:
        updates = HistoricalUpdates(req_id, req, update_s=1.0 if bar_s < DAY else 5.0)
        updates.start(state.now())
        session.bar_subs[req_id] = updates


async def req_real_time_bars(session: Session, r: FieldReader) -> None:
    """50: a 5-second bar every 5 seconds."""
    r.skip(1)
    req_id = r.req()
    q = r.contract()
    r.skip(1)  # barSize: TWS serves 5 seconds whatever is asked
    what, use_rth = r.text().upper(), r.flag()
    contract = await resolve_one(session, q, req_id)
    if contract is None:
        return
    req = BarRequest(contract, 5, what, use_rth, 2)
    try:
        session.state.bars.check(req)
    except BarRequestError as exc:
        session.error(req_id, exc.code, exc.text)
        return
    sub = RealtimeBars(req_id, req)
    sub.start(session.state.now())
    session.bar_subs[req_id] = sub


async def cancel_bars(session: Session, r: FieldReader) -> None:
    """25, 51: end a keepUpToDate history or a real-time bar stream."""
    r.skip(1)
    session.bar_subs.pop(r.req(), None)


async def req_head_timestamp(session: Session, r: FieldReader) -> None:
    """87: the earliest data point (the first day of the simulated history)."""
    req_id = r.req()
    q = r.contract()
    r.skip(3)  # includeExpired, useRTH, whatToShow
    format_date = r.integer(1)
    if await resolve_one(session, q, req_id) is None:
        return
    opening = et_datetime(session.state.market.calendar.day(0), time(9, 30))
    stamp = str(int(opening.timestamp())) if format_date == 2 else opening.strftime("%Y%m%d-%H:%M:%S")
    session.send(m.head_timestamp(req_id, stamp))


# ------------------------------------------------------------------ small queries
async def req_current_time(session: Session, r: FieldReader) -> None:
    """49: integer epoch seconds of the simulator clock."""
    session.send(m.current_time(int(session.state.now().timestamp())))


async def req_ids(session: Session, r: FieldReader) -> None:
    """8: the next valid order id."""
    assert session.client_id is not None
    session.send(m.next_valid_id(session.state.orders.next_order_id(session.client_id)))


async def req_managed_accounts(session: Session, r: FieldReader) -> None:
    """17: the managed accounts."""
    session.send(m.managed_accounts(session.state.config.accounts))


async def ignore(session: Session, r: FieldReader) -> None:
    """Requests TWS accepts without a reply (reqAutoOpenOrders, a repeated startApi...)."""


DATA_HANDLERS: dict[int, Handler] = {
    1: req_mkt_data,
    2: cancel_subscription,
    8: req_ids,
    9: req_contract_details,
    10: req_mkt_depth,
    11: cancel_subscription,
    17: req_managed_accounts,
    20: req_historical_data,
    25: cancel_bars,
    49: req_current_time,
    50: req_real_time_bars,
    51: cancel_bars,
    59: req_market_data_type,
    71: ignore,
    78: req_sec_def_opt_params,
    82: req_mkt_depth_exchanges,
    87: req_head_timestamp,
    91: req_market_rule,
    97: req_tick_by_tick,
    98: cancel_subscription,
}

"""Quotes from the simulated market: sessions, night-time flicker, options, auction, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.tws.contracts import ContractUniverse
from quanticity.simulation.tws.protocol import ContractQuery
from quanticity.simulation.tws.quotes import QuoteEngine

TUESDAY_10 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 ET
INSTANTS = {
    "regular": TUESDAY_10,
    "pre-market": datetime(2026, 3, 3, 12, 0, tzinfo=UTC),  # 07:00 ET
    "night": datetime(2026, 3, 4, 3, 0, tzinfo=UTC),  # 22:00 ET
    "weekend": datetime(2026, 3, 7, 17, 0, tzinfo=UTC),  # Saturday
    "early morning": datetime(2026, 3, 3, 7, 0, tzinfo=UTC),  # 02:00 ET
}


@pytest.fixture(scope="module")
def engine(market: SimulatedMarket) -> QuoteEngine:
    return QuoteEngine(market)


@pytest.fixture(scope="module")
def universe(market: SimulatedMarket) -> ContractUniverse:
    return ContractUniverse(market)


@pytest.mark.parametrize("when", list(INSTANTS))
@pytest.mark.parametrize("symbol", ["SPY", "AAPL", "IWM"])
def test_stock_quotes_are_two_sided_at_any_hour(
    engine: QuoteEngine, universe: ContractUniverse, symbol: str, when: str
) -> None:
    c = universe.underlying(symbol)
    assert c is not None
    q = engine.quote(c, INSTANTS[when])
    assert q.bid is not None and q.ask is not None and 0 < q.bid < q.ask
    assert q.bid_size > 0 and q.ask_size > 0 and q.last is not None and q.close is not None
    assert q.trading == (when in ("regular", "pre-market"))


def test_outside_sessions_prices_hold_but_sizes_flicker(engine: QuoteEngine, universe: ContractUniverse) -> None:
    spy = universe.underlying("SPY")
    assert spy is not None
    night = INSTANTS["night"]
    quotes = [engine.quote(spy, night + timedelta(seconds=0.25 * i)) for i in range(40)]
    assert len({(q.bid, q.ask) for q in quotes}) <= 2  # only the one-tick spread flicker
    assert len({q.last for q in quotes}) == 1
    assert len({(q.bid_size, q.ask_size) for q in quotes}) > 10


def test_indices_have_a_value_and_no_quotes(engine: QuoteEngine, universe: ContractUniverse) -> None:
    for symbol in ("SPX", "VIX"):
        c = universe.underlying(symbol)
        assert c is not None
        q = engine.quote(c, TUESDAY_10)
        assert q.bid is None and q.ask is None and q.last is not None and q.last > 0 and q.volume is None
    spx, spy = universe.underlying("SPX"), universe.underlying("SPY")
    assert spx is not None and spy is not None
    ratio = engine.quote(spx, TUESDAY_10).last / engine.quote(spy, TUESDAY_10).last  # type: ignore[operator]
    assert ratio == pytest.approx(10.03, rel=1e-3)


def test_quotes_are_deterministic(market: SimulatedMarket, universe: ContractUniverse) -> None:
    spy = universe.underlying("SPY")
    assert spy is not None
    assert QuoteEngine(market).quote(spy, TUESDAY_10) == QuoteEngine(market).quote(spy, TUESDAY_10)


def test_option_quote_matches_the_chain(
    market: SimulatedMarket, engine: QuoteEngine, universe: ContractUniverse
) -> None:
    expiry = market.expirations("SPY", TUESDAY_10)[4]
    (option,) = universe.resolve(
        ContractQuery(symbol="SPY", sec_type="OPT", expiry=expiry.strftime("%Y%m%d"), strike=600.0, right="C"),
        TUESDAY_10,
    )
    q = engine.quote(option, TUESDAY_10)
    chain = market.chain("SPY", TUESDAY_10)
    row = list(chain.contract_id).index(option.occ_id)
    assert (q.bid, q.ask) == (chain.bid[row], chain.ask[row])
    assert q.option is not None
    model = q.option.model
    assert model.delta == pytest.approx(chain.delta[row], rel=1e-9)
    assert model.vega == pytest.approx(chain.vega[row] / 100.0) and model.theta == pytest.approx(chain.theta[row] / 365)
    assert q.option.bid is not None and q.option.bid.implied_vol < q.option.model.implied_vol < q.option.ask.implied_vol  # type: ignore[union-attr]


def test_the_closing_imbalance_builds_in_the_last_hour(engine: QuoteEngine, universe: ContractUniverse) -> None:
    spy = universe.underlying("SPY")
    assert spy is not None
    day = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)  # 15:00 ET
    early, late, final = (engine.quote(spy, day + timedelta(minutes=n)).auction for n in (5, 55, 90))
    assert early is not None and late is not None and final is not None
    assert abs(late.imbalance) > abs(early.imbalance) and late.volume > early.volume
    assert early.regulatory == 0 and late.regulatory == late.imbalance != 0
    assert final.imbalance == 0 and final.volume > 0 and final.price > 0
    aapl = universe.underlying("AAPL")
    assert aapl is not None and engine.quote(aapl, day).auction is None


def test_fx_rates_tick_around_the_clock(engine: QuoteEngine, universe: ContractUniverse) -> None:
    eur = next(c for c in universe.underlyings() if c.sec_type == "CASH" and c.symbol == "EUR")
    q = engine.quote(eur, INSTANTS["weekend"])
    assert q.bid is not None and q.ask is not None and 0.9 < q.bid < q.ask < 1.3


def test_day_orders_live_until_their_session_closes(market: SimulatedMarket) -> None:
    from quanticity.simulation.tws.config import TwsSimConfig
    from quanticity.simulation.tws.state import SimState

    state = SimState(market, TwsSimConfig(), lambda: TUESDAY_10)
    try:
        assert state.session_close(TUESDAY_10, False) == datetime(2026, 3, 3, 21, 0, tzinfo=UTC)  # 16:00 ET
        assert state.session_close(TUESDAY_10, True) == datetime(2026, 3, 4, 1, 0, tzinfo=UTC)  # 20:00 ET
        friday_night = datetime(2026, 3, 7, 1, 0, tzinfo=UTC)  # Friday 20:00 ET: Monday's session
        assert state.session_close(friday_night, False) == datetime(2026, 3, 9, 20, 0, tzinfo=UTC)
    finally:
        state.shutdown()

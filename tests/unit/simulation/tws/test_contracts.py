"""The contract universe against the simulated market, and contractData as ib_insync reads it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from ib_insync.decoder import Decoder

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.tws.contract_details import MARKET_RULES, contract_data, market_rule_id
from quanticity.simulation.tws.contracts import ContractUniverse, option_con_id, price_increment
from quanticity.simulation.tws.messages import ARITY
from quanticity.simulation.tws.protocol import ContractQuery, encode_fields, split_payload
from tests.unit.simulation.tws.samples import INDEX, OPTION, STOCK
from tests.unit.simulation.tws.test_protocol import Recorder

NOW = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)  # Tuesday 11:00 ET


@pytest.fixture(scope="module")
def universe(market: SimulatedMarket) -> ContractUniverse:
    return ContractUniverse(market)


def _one(universe: ContractUniverse, **query: object) -> object:
    (found,) = universe.resolve(ContractQuery(**query), NOW)  # type: ignore[arg-type]
    return found


def test_stocks_and_indices_carry_real_con_ids(universe: ContractUniverse) -> None:
    spy = universe.resolve(ContractQuery(symbol="SPY", sec_type="STK", exchange="SMART", currency="USD"), NOW)
    assert [(c.con_id, c.primary_exchange, c.stock_type) for c in spy] == [(756733, "ARCA", "ETF")]
    aapl = universe.underlying("AAPL")
    assert aapl is not None and (aapl.con_id, aapl.primary_exchange, aapl.trading_class) == (265598, "NASDAQ", "NMS")
    spx = universe.resolve(ContractQuery(symbol="SPX", sec_type="IND", exchange="CBOE"), NOW)
    assert [(c.con_id, c.exchange) for c in spx] == [(416904, "CBOE")]
    assert universe.resolve(ContractQuery(symbol="SPX", sec_type="STK", exchange="SMART"), NOW) == []
    assert universe.resolve(ContractQuery(symbol="SPXW", sec_type="IND"), NOW) == []
    assert universe.resolve(ContractQuery(symbol="NOPE", sec_type="STK"), NOW) == []


def test_every_listed_symbol_is_a_contract(market: SimulatedMarket, universe: ContractUniverse) -> None:
    names = {(c.symbol, c.sec_type) for c in universe.underlyings()}
    assert {(s, "STK") for s in ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "TSLA")} <= names
    assert {("SPX", "IND"), ("VIX", "IND"), ("EUR", "CASH")} <= names
    assert all((s, "STK") in names or (s, "IND") in names for s in market.symbols if s != "SPXW")
    ids = [c.con_id for c in universe.underlyings()]
    assert len(ids) == len(set(ids))


def test_the_requested_exchange_is_echoed_and_checked(universe: ContractUniverse) -> None:
    assert [
        c.exchange for c in universe.resolve(ContractQuery(symbol="SPY", sec_type="STK", exchange="ARCA"), NOW)
    ] == ["ARCA"]
    assert universe.resolve(ContractQuery(symbol="SPY", sec_type="STK", exchange="NOWHERE"), NOW) == []
    assert universe.resolve(ContractQuery(symbol="SPY", sec_type="STK", currency="EUR"), NOW) == []


def test_options_resolve_from_the_listing(market: SimulatedMarket, universe: ContractUniverse) -> None:
    expiry = market.expirations("SPY", NOW)[5]
    stamp = expiry.strftime("%Y%m%d")
    call = universe.resolve(ContractQuery(symbol="SPY", sec_type="OPT", expiry=stamp, strike=600.0, right="C"), NOW)
    assert len(call) == 1
    c = call[0]
    assert (c.expiry, c.strike, c.right, c.multiplier, c.trading_class, c.under_con_id) == (
        expiry, 600.0, "C", "100", "SPY", 756733,
    )  # fmt: skip
    assert c.local_symbol == f"SPY   {expiry:%y%m%d}C00600000" and c.con_id == option_con_id(c.occ_id)
    assert universe.by_con_id(c.con_id, NOW) == c
    fresh = ContractUniverse(market)  # a conId from another process: found by scanning the listings
    found = fresh.by_con_id(c.con_id, NOW)
    assert found is not None and found.occ_id == c.occ_id
    both = universe.resolve(ContractQuery(symbol="SPY", sec_type="OPT", expiry=stamp, strike=600.0), NOW)
    assert sorted(o.right for o in both) == ["C", "P"]
    month = universe.resolve(ContractQuery(symbol="SPY", sec_type="OPT", expiry=stamp[:6], right="P"), NOW)
    assert len(month) > 50 and {o.right for o in month} == {"P"}
    assert universe.resolve(ContractQuery(symbol="SPY", sec_type="OPT", expiry="20200117", strike=600.0), NOW) == []


def test_spx_options_have_two_trading_classes(market: SimulatedMarket, universe: ContractUniverse) -> None:
    rows = universe.option_parameters("SPX", NOW)
    assert rows is not None and {r[2] for r in rows} == {"SPX", "SPXW"} and {r[0] for r in rows} == {"SMART", "CBOE"}
    spxw = next(r for r in rows if r[2] == "SPXW")
    expiry, strike = spxw[4][0], spxw[5][len(spxw[5]) // 2]
    found = universe.resolve(
        ContractQuery(symbol="SPX", sec_type="OPT", expiry=expiry, strike=strike, right="C", trading_class="SPXW"), NOW
    )
    assert len(found) <= 1
    assert universe.option_parameters("VIX", NOW) == []
    assert universe.option_parameters("NOPE", NOW) is None


def test_tick_rules_follow_the_quoting() -> None:
    assert price_increment(STOCK, 600.0) == 0.01 and price_increment(STOCK, 0.5) == 0.0001
    assert price_increment(OPTION, 0.5) == 0.01 and price_increment(OPTION, 12.0) == 0.01
    spx_option = OPTION.at("CBOE")
    object.__setattr__(spx_option, "tick_style", "spx")
    assert price_increment(spx_option, 2.0) == 0.05 and price_increment(spx_option, 30.0) == 0.10
    assert price_increment(INDEX, 6000.0) == 0.01
    assert MARKET_RULES[market_rule_id(STOCK)][-1] == (1.0, 0.01)


def _details(msg: list[object]) -> object:
    recorder = Recorder()
    Decoder(recorder, 176).interpret(split_payload(encode_fields(msg).encode()))  # type: ignore[arg-type]
    ((name, (req_id, details)),) = recorder.calls
    assert name == "contractDetails" and req_id == 3
    return details


def test_contract_data_decodes_with_every_field(universe: ContractUniverse, market: SimulatedMarket) -> None:
    spy = universe.underlying("SPY")
    assert spy is not None
    msg = contract_data(3, spy, NOW)
    assert len(msg) == ARITY[10]
    d = _details(msg)
    c = d.contract  # type: ignore[attr-defined]
    assert (c.conId, c.symbol, c.primaryExchange, c.exchange, d.minTick, d.stockType) == (  # type: ignore[attr-defined]
        756733, "SPY", "ARCA", "SMART", 0.01, "ETF",
    )  # fmt: skip
    assert d.timeZoneId == "US/Eastern" and "20260303:0930-20260303:1600" in d.liquidHours  # type: ignore[attr-defined]
    expiry: date = market.expirations("SPY", NOW)[2]
    (option,) = universe.resolve(
        ContractQuery(symbol="SPY", sec_type="OPT", expiry=expiry.strftime("%Y%m%d"), strike=600.0, right="P"), NOW
    )
    od = _details(contract_data(3, option, NOW))
    assert od.contract.lastTradeDateOrContractMonth == expiry.strftime("%Y%m%d")  # type: ignore[attr-defined]
    assert od.lastTradeTime == "16:00" and od.underConId == 756733  # type: ignore[attr-defined]
    assert od.contract.strike == 600.0 and od.contract.right == "P"  # type: ignore[attr-defined]

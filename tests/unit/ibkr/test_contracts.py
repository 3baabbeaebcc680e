"""Contract selection: expiry buckets, ATM strikes, chain choice, tick sizes."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.ibkr.contracts import (
    ChainParams,
    ContractError,
    depth_contract,
    option_tick_size,
    pick_chain,
    round_to_tick,
    select_expiries,
    select_strikes,
    underlying_contract,
)
from quanticity.ibkr.settings import DepthVenue, IbkrSettings

TUESDAY = date(2026, 11, 24)


def test_spx_is_an_index_on_cboe_and_spy_a_smart_stock() -> None:
    spx, spy = underlying_contract("SPX"), underlying_contract("SPY")
    assert (spx.secType, spx.exchange) == ("IND", "CBOE")
    assert (spy.secType, spy.exchange, spy.currency) == ("STK", "SMART", "USD")


def test_depth_refuses_smart() -> None:
    with pytest.raises(ContractError, match="explicit exchange"):
        depth_contract("SPY", "SMART")
    with pytest.raises(ValueError, match="not SMART"):
        DepthVenue.parse("SPY@SMART")
    with pytest.raises(ValueError, match="SYMBOL@EXCHANGE"):
        IbkrSettings(depth={"venues": ["SPY"]})


def test_expiry_buckets() -> None:
    listed = [TUESDAY, TUESDAY + timedelta(days=1), date(2026, 12, 18), date(2026, 12, 31), date(2027, 1, 15)]
    chosen = select_expiries(listed, TUESDAY, ["0dte", "1dte", "swing"])
    assert chosen == {"0dte": TUESDAY, "1dte": TUESDAY + timedelta(days=1), "swing": date(2026, 12, 18)}


def test_friday_1dte_is_monday_and_missing_buckets_are_absent() -> None:
    friday = date(2026, 11, 27)
    monday = date(2026, 11, 30)
    assert select_expiries([friday, monday], friday, ["0dte", "1dte"]) == {"0dte": friday, "1dte": monday}
    # no expiry today, next one a week away: neither 0DTE nor 1DTE exists
    assert select_expiries([friday + timedelta(days=7)], friday, ["0dte", "1dte"]) == {}


def test_atm_strikes() -> None:
    strikes = [float(k) for k in range(580, 621)]
    assert select_strikes(strikes, 600.4, 2) == [598.0, 599.0, 600.0, 601.0, 602.0]
    assert select_strikes(strikes, 600.6, 1) == [600.0, 601.0, 602.0]
    assert select_strikes(strikes, 1000.0, 2) == [618.0, 619.0, 620.0]  # clipped at the wing
    with pytest.raises(ContractError):
        select_strikes([], 600.0, 2)
    with pytest.raises(ContractError):
        select_strikes(strikes, float("nan"), 2)


@given(
    st.lists(st.floats(1, 5000, allow_nan=False), min_size=1, max_size=60, unique=True),
    st.floats(1, 5000, allow_nan=False),
    st.integers(0, 5),
)
def test_strikes_are_contiguous_and_centred(strikes: list[float], spot: float, n: int) -> None:
    chosen = select_strikes(strikes, spot, n)
    ordered = sorted(strikes)
    nearest = min(ordered, key=lambda k: abs(k - spot))
    assert any(abs(k - spot) == abs(nearest - spot) for k in chosen)
    i = ordered.index(chosen[0])
    assert ordered[i : i + len(chosen)] == chosen
    assert len(chosen) <= 2 * n + 1


def test_spx_picks_the_daily_class() -> None:
    monthly = ChainParams("SMART", "SPX", "100", (date(2026, 12, 18),), (6000.0,))
    daily = ChainParams("SMART", "SPXW", "100", (TUESDAY, TUESDAY + timedelta(days=1)), (6000.0,))
    cboe = ChainParams("CBOE", "SPXW", "100", (TUESDAY,), (6000.0,))
    assert pick_chain([monthly, cboe, daily], TUESDAY).trading_class == "SPXW"
    assert pick_chain([monthly, cboe, daily], TUESDAY).exchange == "SMART"
    with pytest.raises(ContractError):
        pick_chain([], TUESDAY)


@pytest.mark.parametrize(
    ("cls", "price", "tick"),
    [
        ("SPY", "25", "0.01"),
        ("AAPL", "2.5", "0.01"),
        ("AAPL", "3.5", "0.05"),
        ("XYZ", "2", "0.05"),
        ("XYZ", "4", "0.10"),
    ],
)
def test_option_tick_sizes(cls: str, price: str, tick: str) -> None:
    assert option_tick_size(cls, Decimal(price)) == Decimal(tick)


def test_round_to_tick_never_worsens_the_limit() -> None:
    assert round_to_tick(Decimal("3.07"), Decimal("0.05"), "buy") == Decimal("3.05")
    assert round_to_tick(Decimal("3.07"), Decimal("0.05"), "sell") == Decimal("3.10")
    assert round_to_tick(Decimal("3.10"), Decimal("0.05"), "sell") == Decimal("3.10")
    assert option_tick_size("SPY", Decimal("0.5"), "STK") == Decimal("0.0001")


def test_client_ids_must_differ() -> None:
    with pytest.raises(ValueError, match="client ids must differ"):
        IbkrSettings(client_ids={"ingestion": 5, "execution": 5})

"""Greeks of a chain snapshot: IV choice, spot choice, values, cross-check, summary and document."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import orjson
import pytest

from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import (
    GREEKS_SCHEMA,
    ChainNotComputable,
    Spot,
    SummaryBook,
    compute_chain_greeks,
    expiry_years,
    horizon_of,
    input_lag_s,
    parity_spot,
    settlement,
    valid_until,
)
from quanticity.analytics import IVStatus, compute_greeks
from quanticity.schemas import OptionChainSnapshot
from quanticity.storage.analytics_store import decode_result

# Tuesday 2026-11-24 15:00 UTC = 10:00 ET.
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
RATE = 0.043


def synthetic_chain(
    n: int = 400,
    *,
    symbol: str = "SPY",
    spot: float = 600.0,
    expiry: date = date(2026, 12, 18),
    event_time: datetime = NOW,
    rate: float = RATE,
    dividend_yield: float = 0.0,
    underlying_price: bool = False,
    record_id: str = "chain-1",
    junk_rows: int = 0,
    seed: int = 1,
) -> OptionChainSnapshot:
    """``n`` contracts (n/2 strikes 0.6x-1.4x spot, call and put), priced by BSM on a smile.

    Bids and asks straddle the model price symmetrically (so the mid is the model price);
    provider Greeks are ours in AlphaVantage units, the first ``junk_rows`` deliberately wrong.
    """
    rng = np.random.default_rng(seed)
    half = n // 2
    strikes = np.round(np.linspace(0.6 * spot, 1.4 * spot, half), 2)
    strike = np.repeat(strikes, 2)
    is_call = np.tile([True, False], half)
    years = datetime.combine(expiry, datetime.min.time(), tzinfo=UTC) + timedelta(hours=21) - event_time
    t = years.total_seconds() / (365.0 * 86400.0)
    vol = 0.18 + 0.4 * np.log(strike / spot) ** 2 - 0.05 * np.log(strike / spot)
    g = compute_greeks(spot, strike, t, rate, dividend_yield, vol, is_call)
    half_spread = np.minimum(0.01 + 0.01 * g.price, 0.5 * g.price)
    delta = g.delta.copy()
    delta[:junk_rows] = -delta[:junk_rows] + rng.uniform(0.3, 0.5, junk_rows)

    def floats(a: np.ndarray) -> list[float | None]:
        return [float(x) for x in a]

    return OptionChainSnapshot(
        symbol=symbol,
        expiry=expiry,
        underlying_price=spot if underlying_price else None,
        strike=floats(strike),
        right=["C" if c else "P" for c in is_call],
        bid=floats(g.price - half_spread),
        ask=floats(g.price + half_spread),
        last=[None] * n,
        volume=[None] * n,
        open_interest=floats(np.round(rng.uniform(0, 5000, n))),
        implied_vol=floats(vol),
        delta=floats(delta),
        gamma=floats(g.gamma),
        theta=floats(g.theta / 365.0),
        vega=floats(g.vega * 0.01),
        rho=floats(g.rho * 0.01),
        record_id=record_id,
        event_time=event_time,
        ingest_time=event_time,
        source="sim",
        run_id="test",
        mode="sim",
    )


def _clock() -> datetime:
    return NOW + timedelta(milliseconds=5)


CONFIG = AnalyticsConfig(risk_free_rate=RATE)


def test_settlement_is_four_pm_new_york_and_time_runs_in_calendar_years() -> None:
    assert settlement(date(2026, 12, 18), CONFIG) == datetime(2026, 12, 18, 21, 0, tzinfo=UTC)  # EST
    assert settlement(date(2026, 7, 17), CONFIG) == datetime(2026, 7, 17, 20, 0, tzinfo=UTC)  # EDT
    assert expiry_years(NOW, date(2026, 11, 24), CONFIG) == pytest.approx(6 / (365 * 24))


@pytest.mark.parametrize(
    ("expiry", "horizon"),
    [(date(2026, 11, 24), "0dte"), (date(2026, 11, 25), "1dte"), (date(2026, 11, 26), "swing")],
)
def test_horizon_by_business_days(expiry: date, horizon: str) -> None:
    assert horizon_of(NOW, expiry) == horizon


def test_friday_to_monday_is_one_business_day() -> None:
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert horizon_of(friday, date(2026, 11, 30)) == "1dte"


def test_validity_runs_from_the_input_event_time_by_horizon() -> None:
    config = AnalyticsConfig(validity_0dte_s=30, validity_1dte_s=45, validity_swing_s=300)
    assert valid_until(NOW, "0dte", config) == NOW + timedelta(seconds=30)
    assert valid_until(NOW, "1dte", config) == NOW + timedelta(seconds=45)
    assert valid_until(NOW, "swing", config) == NOW + timedelta(seconds=300)


@pytest.mark.parametrize(
    ("event_time", "reopens"),
    [
        (datetime(2026, 11, 24, 21, 0, tzinfo=UTC), datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),  # Tue close → Wed open
        (datetime(2026, 11, 25, 22, 0, tzinfo=UTC), datetime(2026, 11, 27, 14, 30, tzinfo=UTC)),  # Thanksgiving skipped
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), datetime(2026, 11, 30, 14, 30, tzinfo=UTC)),  # Saturday → Monday
        (datetime(2026, 11, 24, 13, 0, tzinfo=UTC), datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),  # 08:00 ET → 09:30
    ],
)
def test_an_input_from_a_closed_market_stays_valid_until_a_validity_after_the_next_open(
    event_time: datetime, reopens: datetime
) -> None:
    """A chain stamped at the close (or a night, weekend, holiday) describes the market until the next open."""
    config = AnalyticsConfig(validity_0dte_s=30, validity_1dte_s=45, validity_swing_s=300)
    assert valid_until(event_time, "swing", config) == reopens + timedelta(seconds=300)
    assert valid_until(event_time, "1dte", config) == reopens + timedelta(seconds=45)


def test_input_lag_runs_from_the_event_time_in_session_and_from_receipt_while_closed() -> None:
    """In session: the event time's age. A chain stamped at Tuesday's close and received at
    21:00 ET: 2 s of lag at 21:00:02 ET (it is the newest there is, not 5 hours old); once
    Wednesday opens, the lag runs from the open."""
    in_session = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 13:00 ET
    assert input_lag_s(in_session, in_session + timedelta(seconds=1), in_session + timedelta(seconds=3)) == 3.0
    close = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # 16:00 ET
    received = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 21:00 ET
    assert input_lag_s(close, received, received + timedelta(seconds=2)) == 2.0
    assert input_lag_s(close, None, received) == 5 * 3600.0  # no receipt time: the event time is all there is
    wednesday_open = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    assert input_lag_s(close, received, wednesday_open + timedelta(seconds=7)) == 7.0
    assert input_lag_s(in_session, None, in_session - timedelta(seconds=1)) == 0.0  # a clock step back is not negative


def test_the_last_second_of_the_session_is_still_open() -> None:
    """At 15:59:59 ET the session is open: the validity runs from the event time."""
    config = AnalyticsConfig(validity_0dte_s=30, validity_1dte_s=45, validity_swing_s=300)
    last = datetime(2026, 11, 24, 20, 59, 59, tzinfo=UTC)
    assert valid_until(last, "0dte", config) == last + timedelta(seconds=30)


def test_parity_spot_recovers_the_spot_from_call_put_pairs() -> None:
    chain = synthetic_chain(dividend_yield=0.0)
    t = expiry_years(NOW, chain.expiry, CONFIG)
    mid = (chain.bid + chain.ask) / 2
    found = parity_spot(chain.strike, np.asarray(chain.right) == "C", mid, t, RATE, 0.0, 5)
    assert found is not None
    assert found[0] == pytest.approx(600.0, rel=1e-9)


def test_greeks_equal_the_engine_on_the_same_inputs_and_iv_is_recovered_from_mid() -> None:
    chain = synthetic_chain(underlying_price=True)
    result = compute_chain_greeks(chain, spot_hint=None, config=CONFIG, clock=_clock)
    doc = decode_result(result.document, "analytics:greeks:SPY")
    cols = doc["columns"]
    iv = cols["iv"]
    solved = np.array(cols["iv_status"]) == int(IVStatus.SOLVED)
    assert solved.mean() > 0.95  # deep-ITM rows with no time value may fall back to the provider
    truth = chain.implied_vol
    # Where the problem is well conditioned (price / vega <= 100) the IV is the generating one; deep in
    # the money (vega ~ 0) the rounding of (price - h + price + h) / 2 is amplified, so it is not checked there.
    mid = (chain.bid + chain.ask) / 2
    conditioned = solved & (mid <= 100 * chain.vega * 100)
    assert conditioned.sum() > 100
    assert np.allclose(iv[conditioned], truth[conditioned], rtol=1e-9)
    ok = np.isfinite(iv)
    is_call = np.array(cols["right"]) == "C"
    strike = np.array(cols["strike"])
    expected = compute_greeks(doc["spot"], strike[ok], doc["expiry_years"], doc["rate"], 0.0, iv[ok], is_call[ok])
    for name, values in expected.as_dict().items():
        assert np.allclose(np.array(cols[name], dtype=float)[ok], values, rtol=1e-12, atol=0.0), name
    assert doc["spot_source"] == "chain" and doc["input_ids"] == ["chain-1"]
    assert doc["computed_at"] == _clock().isoformat()
    assert doc["valid_until"] == (NOW + timedelta(seconds=300)).isoformat()  # 18 Dec is a swing expiry
    assert doc["counts"]["contracts"] == 400 and doc["counts"]["priced"] == int(ok.sum())


def test_without_underlying_price_the_parity_spot_is_used() -> None:
    result = compute_chain_greeks(synthetic_chain(), spot_hint=None, config=CONFIG, clock=_clock)
    assert result.summary.spot_source == "parity"
    assert result.summary.spot == pytest.approx(600.0, rel=1e-9)


def test_quote_spot_needs_to_be_recent_when_the_chain_has_no_pairs() -> None:
    chain = synthetic_chain()
    calls_only = chain.model_copy(
        update={"bid": [b if r == "C" else None for b, r in zip(chain.bid, chain.right, strict=True)]}
    )
    fresh = Spot(600.0, "quote", NOW - timedelta(seconds=1), "q-1")
    result = compute_chain_greeks(calls_only, spot_hint=fresh, config=CONFIG, clock=_clock)
    assert result.summary.spot_source == "quote"
    assert result.summary.input_ids == ("chain-1", "q-1")
    old = Spot(600.0, "quote", NOW - timedelta(seconds=60), "q-0")
    with pytest.raises(ChainNotComputable) as caught:
        compute_chain_greeks(calls_only, spot_hint=old, config=CONFIG, clock=_clock)
    assert caught.value.reason == "no_spot"


def test_rows_without_a_mid_use_the_provider_iv_and_rows_without_either_get_no_greeks() -> None:
    chain = synthetic_chain(underlying_price=True)
    n = len(chain.strike)
    bid = list(chain.bid)
    provider_iv = list(chain.implied_vol)
    bid[10] = None  # no mid → provider IV
    bid[11] = None
    provider_iv[11] = None  # neither → no Greeks
    chain = chain.model_copy(update={"bid": bid, "implied_vol": provider_iv})
    result = compute_chain_greeks(chain, spot_hint=None, config=CONFIG, clock=_clock)
    cols = result.columns
    assert cols["iv_status"][10] == int(IVStatus.MISSING_PRICE) and cols["iv_source"][10] == 2
    assert cols["iv"][10] == chain.implied_vol[10]
    assert math.isnan(cols["iv"][11]) and math.isnan(cols["delta"][11]) and cols["iv_source"][11] == 0
    doc = decode_result(result.document, "analytics:greeks:SPY")
    assert math.isnan(doc["columns"]["delta"][11])  # no value stays NaN in the stored columns
    assert doc["counts"]["iv_missing_price"] == 2 and doc["counts"]["priced"] <= n - 1


def test_the_stored_document_reads_back_as_the_computed_columns_and_summary() -> None:
    """Every column bit for bit (NaN where no value, the integer codes exact), ``right`` in
    order, and the summary's fields; a truncated document is refused with the key named."""
    chain = synthetic_chain(underlying_price=True)
    result = compute_chain_greeks(chain, spot_hint=None, config=CONFIG, clock=_clock)

    doc = decode_result(result.document, "analytics:greeks:SPY:x")

    assert doc["schema"] == GREEKS_SCHEMA and doc["symbol"] == chain.symbol
    assert doc["columns"]["right"] == list(chain.right)
    assert set(doc["columns"]) == {*result.columns, "right"}
    for name, values in result.columns.items():
        stored = doc["columns"][name]
        assert stored.dtype == np.float64 and np.array_equal(stored, values.astype(np.float64), equal_nan=True), name
    assert doc["columns"]["iv_status"].astype(np.int64).tolist() == result.columns["iv_status"].tolist()
    summary = result.summary.as_json()
    assert {k: doc[k] for k in ("computed_at", "valid_until", "input_ids", "expiry", "counts")} == {
        k: summary[k] for k in ("computed_at", "valid_until", "input_ids", "expiry", "counts")
    }
    with pytest.raises(ValueError, match="analytics:greeks:SPY:x holds a broken columnar document"):
        decode_result(result.document[:-3], "analytics:greeks:SPY:x")
    with pytest.raises(ValueError, match="k does not hold JSON"):
        decode_result(b"{nope", "k")


def test_provider_greek_disagreements_are_flagged_and_counted() -> None:
    chain = synthetic_chain(underlying_price=True, junk_rows=6)
    result = compute_chain_greeks(chain, spot_hint=None, config=CONFIG, clock=_clock)
    flags = result.columns["provider_flags"]
    assert all(flags[:6] & 1)  # the delta bit on every junk row
    assert result.summary.counts["provider_disagree"] >= 6
    assert result.summary.counts["provider_compared"] == result.summary.counts["priced"]


def test_summary_numbers() -> None:
    result = compute_chain_greeks(synthetic_chain(underlying_price=True), spot_hint=None, config=CONFIG, clock=_clock)
    s = result.summary
    t = s.expiry_years
    forward = 600.0 * math.exp(RATE * t)
    assert s.forward == pytest.approx(forward)
    # The smile at the forward: 0.18 + 0.4 m^2 - 0.05 m, m = ln(F/S) (strikes interpolated linearly).
    m = math.log(forward / 600.0)
    assert s.atm_iv == pytest.approx(0.18 + 0.4 * m * m - 0.05 * m, abs=2e-4)
    assert s.skew_25d is not None and s.skew_25d > 0  # downside strikes are richer on this smile
    assert s.horizon == "swing"
    assert math.isfinite(s.net_gex) and math.isfinite(s.net_vanna) and math.isfinite(s.net_charm)


def test_expired_and_bad_strikes_are_not_computable() -> None:
    late = synthetic_chain().model_copy(update={"event_time": datetime(2026, 12, 18, 21, 0, 1, tzinfo=UTC)})
    with pytest.raises(ChainNotComputable) as caught:
        compute_chain_greeks(late, spot_hint=None, config=CONFIG, clock=_clock)
    assert caught.value.reason == "expired"
    chain = synthetic_chain(underlying_price=True)
    bad = chain.model_copy(update={"strike": [0.0, *chain.strike[1:]]})
    with pytest.raises(ChainNotComputable) as caught:
        compute_chain_greeks(bad, spot_hint=None, config=CONFIG, clock=_clock)
    assert caught.value.reason == "invalid_strike"


def test_summary_book_keeps_fresh_expiries_and_expires_with_the_earliest() -> None:
    book = SummaryBook()
    swing = compute_chain_greeks(synthetic_chain(underlying_price=True), spot_hint=None, config=CONFIG, clock=_clock)
    zero = compute_chain_greeks(
        synthetic_chain(underlying_price=True, expiry=date(2026, 11, 24), record_id="chain-0"),
        spot_hint=None,
        config=CONFIG,
        clock=_clock,
    )
    book.update("SPY", swing.summary, NOW)
    raw, until = book.update("SPY", zero.summary, NOW)
    doc = orjson.loads(raw)
    assert set(doc["expiries"]) == {"2026-11-24", "2026-12-18"}
    assert until == NOW + timedelta(seconds=30)  # the 0DTE part bounds the whole summary
    assert doc["net_gex"] == pytest.approx(swing.summary.net_gex + zero.summary.net_gex)
    assert doc["input_ids"] == ["chain-0", "chain-1"]
    # 40 s later the 0DTE part has expired: the next update drops it.
    raw, until = book.update("SPY", swing.summary, NOW + timedelta(seconds=40))
    doc = orjson.loads(raw)
    assert set(doc["expiries"]) == {"2026-12-18"} and until == NOW + timedelta(seconds=300)

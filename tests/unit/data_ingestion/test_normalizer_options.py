"""REALTIME_OPTIONS / HISTORICAL_OPTIONS normalization: reference rows, units, junk greeks, CSV = JSON."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import numpy as np
import orjson
import pytest

from quanticity.data_ingestion.normalize_contract import NormalizeResult, RowFlag
from quanticity.data_ingestion.normalizer import normalize
from quanticity.errors import RecordDecodeError
from quanticity.schemas import OptionChainSnapshot, stable_id
from quanticity.schemas.columns import column_list
from tests.unit.data_ingestion.test_normalizer_builders import (
    MID_SESSION,
    OPTION_FIELDS,
    SESSION_DAY,
    context,
    option_rows,
    options_csv,
    options_json,
    payload,
    to_csv,
)

IBM = payload("historical_options_ibm.json")
# The reference's 0DTE rows were taken on 2026-09-04; an evening ingest the same day.
IBM_INGEST = datetime(2026, 9, 4, 22, 0, tzinfo=UTC)


def _snapshots(result: NormalizeResult) -> list[OptionChainSnapshot]:
    return [record for record in result.records if isinstance(record, OptionChainSnapshot)]


def test_reference_rows_keep_prices_and_null_junk_greeks() -> None:
    """The reference's two 0DTE IBM rows (IV 5.98 and 4.39) keep prices; their greeks are withheld."""
    result = normalize("HISTORICAL_OPTIONS", {"symbol": "IBM"}, IBM, context=context(IBM_INGEST))

    [snapshot] = _snapshots(result)
    assert (snapshot.symbol, snapshot.expiry) == ("IBM", date(2026, 9, 4))
    assert column_list(snapshot.strike) == [115.0, 115.0]
    assert snapshot.right == ["C", "P"]
    assert column_list(snapshot.bid) == [118.85, 0.0]
    assert column_list(snapshot.ask) == [121.35, 0.01]
    assert column_list(snapshot.last) == [119.09, 0.0]
    assert column_list(snapshot.volume) == [0.0, 0.0]
    assert column_list(snapshot.open_interest) == [6.0, 0.0]
    for column in (snapshot.implied_vol, snapshot.delta, snapshot.gamma, snapshot.theta, snapshot.vega, snapshot.rho):
        assert column_list(column) == [None, None]
    assert snapshot.flags == ["junk_greeks"]
    assert result.row_flags == [
        RowFlag(0, "IBM260904C00115000", ("junk_greeks:iv_above_3",)),
        RowFlag(1, "IBM260904P00115000", ("junk_greeks:iv_above_3",)),
    ]
    assert snapshot.row_flags == [["junk_greeks:iv_above_3"], ["junk_greeks:iv_above_3"]]
    assert snapshot.contract_id == ["IBM260904C00115000", "IBM260904P00115000"]
    assert column_list(snapshot.mark) == [120.10, 0.01]
    assert (column_list(snapshot.bid_size), column_list(snapshot.ask_size)) == ([9.0, 0.0], [9.0, 1000.0])
    assert result.rejected_rows == []
    assert (result.rows_in, result.rows_out) == (2, 2)


def test_reference_envelope_fields() -> None:
    """A historical snapshot is as of the session close (16:00 EDT = 20:00 UTC) and carries the run's envelope."""
    ctx = context(IBM_INGEST)
    [snapshot] = _snapshots(normalize("HISTORICAL_OPTIONS", {"symbol": "IBM"}, IBM, context=ctx))

    assert snapshot.event_time == datetime(2026, 9, 4, 20, 0, tzinfo=UTC)
    assert (snapshot.source, snapshot.run_id, snapshot.mode, snapshot.ingest_time) == (
        "alphavantage",
        "run-t",
        "sim",
        IBM_INGEST,
    )
    assert snapshot.record_id == stable_id(
        "alphavantage", "HISTORICAL_OPTIONS", "IBM", date(2026, 9, 4), "2026-09-04T20:00:00+00:00"
    )


def test_greeks_are_converted_to_our_units() -> None:
    """Theta per day → per year (×365); vega and rho per point → per 1.00 (×100); IV, delta, gamma unchanged."""
    result = normalize("HISTORICAL_OPTIONS", {}, IBM, context=context(IBM_INGEST, max_implied_vol=10.0))

    [snapshot] = _snapshots(result)
    assert column_list(snapshot.implied_vol) == [5.98546, 4.39526]
    assert column_list(snapshot.delta) == [0.99259, -0.00064]
    assert column_list(snapshot.gamma) == [0.00028, 0.00004]
    assert column_list(snapshot.theta) == [-0.76550 * 365.0, -0.06043 * 365.0]
    assert column_list(snapshot.vega) == [0.00252 * 100.0, 0.00028 * 100.0]
    assert column_list(snapshot.rho) == [0.00310 * 100.0, -0.0]
    assert result.row_flags == []


def _call_greeks(spot: float, strike: float, vol: float, t: float, r: float) -> dict[str, float]:
    """Black-Scholes call price and greeks in our units (docs analytics.md)."""
    sq = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (r + vol * vol / 2) * t) / sq
    d2 = d1 - sq
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * math.erfc(-d1 / math.sqrt(2))
    cdf2 = 0.5 * math.erfc(-d2 / math.sqrt(2))
    return {
        "price": spot * cdf - strike * math.exp(-r * t) * cdf2,
        "delta": cdf,
        "vega": spot * pdf * math.sqrt(t),
        "theta": -spot * pdf * vol / (2 * math.sqrt(t)) - r * strike * math.exp(-r * t) * cdf2,
        "rho": strike * t * math.exp(-r * t) * cdf2,
    }


def test_unit_conversion_matches_black_scholes_on_the_reference_row() -> None:
    """Re-derive the reference call: spot implied from its mark (120.10), T = 1 day / 365, r = 4 %.

    AlphaVantage's theta x 365, vega x 100 and rho x 100 land within 2 % of Black-Scholes in our
    units; a 252-day year for theta would be 45 % off. That is the evidence for the factors.
    """
    vol, strike, t, r = 5.98546, 115.0, 1 / 365, 0.04
    low, high = 200.0, 260.0
    for _ in range(80):  # bisection on spot so that the call is worth its mark
        mid = (low + high) / 2
        low, high = (mid, high) if _call_greeks(mid, strike, vol, t, r)["price"] < 120.10 else (low, mid)
    ours = _call_greeks(low, strike, vol, t, r)
    [snapshot] = _snapshots(normalize("HISTORICAL_OPTIONS", {}, IBM, context=context(IBM_INGEST, max_implied_vol=10.0)))

    assert snapshot.delta[0] == pytest.approx(ours["delta"], rel=0.001)
    assert snapshot.theta[0] == pytest.approx(ours["theta"], rel=0.02)
    assert snapshot.vega[0] == pytest.approx(ours["vega"], rel=0.02)
    assert snapshot.rho[0] == pytest.approx(ours["rho"], rel=0.02)
    assert abs(-0.76550 * 252 - ours["theta"]) / abs(ours["theta"]) > 0.3


def test_csv_and_json_give_identical_records() -> None:
    """The same 2,000-contract chain as JSON and as CSV normalizes to equal snapshots and accounts."""
    rows = option_rows(2000)
    ctx = context()
    from_json = normalize("REALTIME_OPTIONS", {"symbol": "SPY"}, options_json(rows), context=ctx)
    from_csv = normalize("REALTIME_OPTIONS", {"symbol": "SPY"}, options_csv(rows), context=ctx)

    assert from_json.records == from_csv.records
    assert len(from_json.records) == 30
    assert (from_json.rows_out, from_json.rejected_rows, from_json.row_flags) == (2000, [], [])
    assert (from_csv.rows_out, from_csv.rejected_rows, from_csv.row_flags) == (2000, [], [])


def test_rows_are_sorted_by_strike_calls_first_whatever_the_input_order() -> None:
    """Shuffled input gives one snapshot per expiry, strikes ascending, C before P at a strike."""
    rows = option_rows(600)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)  # noqa: S311 - a fixed shuffle, not cryptography

    ordered = normalize("REALTIME_OPTIONS", {}, options_json(rows), context=context()).records
    scrambled = normalize("REALTIME_OPTIONS", {}, options_json(shuffled), context=context()).records
    assert [s.model_dump(mode="json", exclude={"record_id"}) for s in ordered] == [
        s.model_dump(mode="json", exclude={"record_id"}) for s in scrambled
    ]
    for snapshot in _snapshots(NormalizeResult("X", records=list(ordered))):
        keys = list(zip(snapshot.strike, snapshot.right, strict=True))
        assert keys == sorted(keys)
    assert [s.expiry for s in _snapshots(NormalizeResult("X", records=list(ordered)))] == sorted(
        {date.fromisoformat(row["expiration"]) for row in rows}
    )


def _chain_with(*edits: dict[str, str]) -> list[dict[str, str]]:
    rows = option_rows(4)  # one expiry (0DTE): strikes 300 and 450, call and put each
    return [{**row, **edit} for row, edit in zip(rows, edits, strict=False)] + rows[len(edits) :]


@pytest.mark.parametrize(
    ("edit", "flag"),
    [
        ({"implied_volatility": "0.00000"}, "junk_greeks:iv_not_positive"),
        ({"implied_volatility": "3.50000"}, "junk_greeks:iv_above_3"),
        ({"delta": "1.20000"}, "junk_greeks:delta_out_of_range"),
        ({"delta": "-0.40000"}, "junk_greeks:delta_sign"),
        ({"gamma": "-0.00100"}, "junk_greeks:gamma_negative"),
        ({"vega": "-0.01000"}, "junk_greeks:vega_negative"),
        ({"theta": "abc"}, "junk_greeks:bad_theta"),
    ],
)
def test_each_implausible_greek_nulls_that_rows_greeks(edit: dict[str, str], flag: str) -> None:
    """One implausible greek on the first call withholds all six of its greeks, keeps its prices, and says why."""
    rows = _chain_with(edit)
    result = normalize("REALTIME_OPTIONS", {}, options_json(rows), context=context())

    [snapshot] = _snapshots(result)
    assert math.isnan(snapshot.implied_vol[0]) and math.isnan(snapshot.theta[0]) and math.isnan(snapshot.rho[0])
    assert snapshot.implied_vol[1] == float(rows[1]["implied_volatility"])
    assert snapshot.bid[0] == float(rows[0]["bid"])
    assert result.row_flags == [RowFlag(0, rows[0]["contractID"], (flag,))]
    assert "junk_greeks" in snapshot.flags
    assert result.rows_out == 4


def test_bad_and_negative_prices_are_withheld_and_named() -> None:
    """An unparseable bid and a negative ask become None; the row stays, flagged."""
    rows = _chain_with({"bid": "n/a", "ask": "-1.00"})
    result = normalize("REALTIME_OPTIONS", {}, options_csv(rows), context=context())

    [snapshot] = _snapshots(result)
    assert math.isnan(snapshot.bid[0]) and math.isnan(snapshot.ask[0])
    assert result.row_flags == [RowFlag(0, rows[0]["contractID"], ("bad_bid", "negative_ask"))]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"symbol": "ibm lower"}, "bad_symbol"),
        ({"type": "straddle"}, "bad_type"),
        ({"expiration": "2099-99-99"}, "bad_expiration"),
        ({"strike": "-5"}, "bad_strike"),
        ({"strike": "."}, "bad_strike"),
        ({"expiration": "2026-02-27"}, "expired"),
    ],
)
def test_unusable_rows_are_rejected_with_a_reason(edit: dict[str, str], reason: str) -> None:
    """A row without a usable identity is rejected (never silently dropped); the others survive."""
    rows = _chain_with(edit)
    for form in (options_json(rows), options_csv(rows)):
        result = normalize("REALTIME_OPTIONS", {}, form, context=context())

        assert [(r.reason, r.row_index) for r in result.rejected_rows] == [(reason, 0)]
        assert result.rows_out == 3 and result.rows_in == 4
        assert "partial" in result.flags


def test_repeated_contract_keeps_the_first_listed() -> None:
    """A (strike, right) listed twice keeps AlphaVantage's first row; the repeat is rejected."""
    rows = option_rows(4)
    repeat = {**rows[0], "bid": "999.00", "ask": "999.10"}
    result = normalize("REALTIME_OPTIONS", {}, options_json([*rows, repeat]), context=context())

    [snapshot] = _snapshots(result)
    assert snapshot.bid[0] == float(rows[0]["bid"])
    assert [(r.reason, r.row_index) for r in result.rejected_rows] == [("duplicate_contract", 4)]
    assert snapshot.flags == ["partial"]


def test_realtime_snapshot_is_fresh_mid_session_and_stale_next_day() -> None:
    """Mid-session the snapshot is stamped at receipt; fetched the next morning it is the close's, tagged stale."""
    body = options_json(option_rows(4))
    fresh = _snapshots(normalize("REALTIME_OPTIONS", {}, body, context=context(MID_SESSION)))[0]
    next_day = MID_SESSION + timedelta(hours=20)
    stale_result = normalize("REALTIME_OPTIONS", {}, body, context=context(next_day))
    stale = _snapshots(stale_result)[0]

    assert fresh.event_time == MID_SESSION and fresh.flags == []
    assert stale.event_time == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # 16:00 EST
    assert stale.flags == ["stale"] and "stale" in stale_result.flags


def test_realtime_without_greeks_is_flagged_no_greeks() -> None:
    """REALTIME_OPTIONS without require_greeks has no greek fields: columns are None, reply tagged."""
    base = OPTION_FIELDS[:14]
    rows = [{name: row[name] for name in base} for row in option_rows(6)]
    csv_body = to_csv(base, ([row[name] for name in base] for row in rows))
    for form in (options_json(rows), csv_body):
        result = normalize("REALTIME_OPTIONS", {}, form, context=context())

        assert "no_greeks" in result.flags
        assert all(np.isnan(c).all() for s in _snapshots(result) for c in (s.delta, s.implied_vol, s.theta))
        assert result.row_flags == [] and result.rows_out == 6


def test_empty_chain_and_payload_errors() -> None:
    """An empty success is an empty result; the artificial sample and a missing data list are decode errors."""
    empty = normalize(
        "REALTIME_OPTIONS", {}, b'{"endpoint": "Realtime Options", "message": "success", "data": []}', context=context()
    )
    assert (empty.records, empty.empty_reason, empty.flags) == ([], "no_contracts", ["empty"])

    artificial = {
        "endpoint": "Realtime Options",
        "message": "This is a premium endpoint. ***THE SAMPLE DATA SCHEMA "
        "BELOW IS ARTIFICIAL AND FOR ILLUSTRATION PURPOSES ONLY***.",
        "data": option_rows(2, symbol="XXYYZZ"),
    }
    with pytest.raises(RecordDecodeError) as excinfo:
        normalize("REALTIME_OPTIONS", {}, orjson.dumps(artificial), context=context())
    assert (excinfo.value.topic, excinfo.value.reason) == ("alphavantage", "not_entitled")
    assert "REALTIME_OPTIONS" in excinfo.value.detail

    with pytest.raises(RecordDecodeError) as excinfo:
        normalize(
            "HISTORICAL_OPTIONS", {}, b'{"endpoint": "Historical Options", "message": "success"}', context=context()
        )
    assert excinfo.value.reason == "missing_section"

    with pytest.raises(RecordDecodeError) as excinfo:
        normalize("REALTIME_OPTIONS", {}, b"contractID,bid\r\nX,1\r\n", context=context())
    assert excinfo.value.reason == "missing_column"


def test_session_day_fixture_is_a_weekday() -> None:
    """The builders' session day must be a trading weekday for the freshness tests to mean anything."""
    assert SESSION_DAY.weekday() < 5


def test_ragged_csv_row_is_rejected_and_the_rest_kept() -> None:
    """A CSV row with a missing field costs that row only (the reader falls back row by row)."""
    rows = option_rows(4)
    lines = options_csv(rows).split(b"\r\n")
    lines[2] = lines[2].rsplit(b",", 1)[0]  # the second data row loses its last field
    result = normalize("REALTIME_OPTIONS", {}, b"\r\n".join(lines), context=context())

    assert [(r.reason, r.row_index) for r in result.rejected_rows] == [("ragged_row", 1)]
    assert (result.rows_in, result.rows_out) == (4, 3)


def test_clean_chain_flags_no_row() -> None:
    """A chain without doubtful rows has an empty row_flags column (no per-row lists to carry)."""
    for snapshot in _snapshots(normalize("REALTIME_OPTIONS", {}, options_csv(option_rows(200)), context=context())):
        assert snapshot.row_flags == []
        assert len(snapshot.contract_id) == len(snapshot.mark) == len(snapshot.strike)
        assert all(isinstance(cid, str) for cid in snapshot.contract_id)


def test_row_from_an_earlier_session_is_flagged_stale() -> None:
    """A row dated before the snapshot's newest row keeps its values and is flagged stale, in both forms."""
    rows = _chain_with({"date": "2026-02-27"}, {"bid": "-1.00", "date": "2026-02-27"})
    for form in (options_json(rows), options_csv(rows)):
        result = normalize("REALTIME_OPTIONS", {}, form, context=context())

        [snapshot] = _snapshots(result)
        assert snapshot.row_flags == [["stale"], ["negative_bid", "stale"], [], []]
        assert snapshot.flags_of(0) == ["stale"] and snapshot.bid[0] == float(rows[0]["bid"])
        assert result.row_flags == [
            RowFlag(0, rows[0]["contractID"], ("stale",)),
            RowFlag(1, rows[1]["contractID"], ("negative_bid", "stale")),
        ]
        assert snapshot.flags == [] and result.rows_out == 4

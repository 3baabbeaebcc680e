"""TIME_SERIES_INTRADAY and GLOBAL_QUOTE normalization, DST, duplicates, and payload-level errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quanticity.data_ingestion.av_values import parse_eastern_timestamp
from quanticity.data_ingestion.normalizer import normalize
from quanticity.errors import RecordDecodeError
from quanticity.schemas import Bar, UnderlyingQuote, stable_id
from tests.unit.data_ingestion.test_normalizer_builders import context, intraday_csv, intraday_json, payload, to_csv

# Ingest 7 minutes after the reference's last 5-minute bar (14:05 EDT) opened.
IBM_INGEST = datetime(2020, 5, 8, 18, 12, tzinfo=UTC)


def test_reference_intraday_gives_bars_oldest_first() -> None:
    """The reference's two IBM 5-minute bars, US/Eastern (EDT) → UTC, oldest first, exact values."""
    result = normalize("TIME_SERIES_INTRADAY", {}, payload("intraday_ibm_5min.json"), context=context(IBM_INGEST))

    bars = [record for record in result.records if isinstance(record, Bar)]
    assert [(b.event_time, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (datetime(2020, 5, 8, 18, 0, tzinfo=UTC), 121.685, 121.8, 121.685, 121.78, 29277.0),
        (datetime(2020, 5, 8, 18, 5, tzinfo=UTC), 121.79, 121.86, 121.7225, 121.74, 31454.0),
    ]
    assert all((b.symbol, b.interval_s, b.source) == ("IBM", 300, "alphavantage") for b in bars)
    assert bars[0].record_id == stable_id("alphavantage", "bar", "IBM", 300, "2020-05-08T18:00:00+00:00")
    assert (result.rows_in, result.rows_out, result.rejected_rows, result.flags) == (2, 2, [], [])


def test_fresh_intraday_also_yields_the_last_close_as_a_quote() -> None:
    """The newest bar's close becomes an UnderlyingQuote stamped at that bar's end."""
    result = normalize("TIME_SERIES_INTRADAY", {}, payload("intraday_ibm_5min.json"), context=context(IBM_INGEST))

    [quote] = [record for record in result.records if isinstance(record, UnderlyingQuote)]
    assert (quote.symbol, quote.last, quote.bid, quote.ask) == ("IBM", 121.74, None, None)
    assert quote.event_time == datetime(2020, 5, 8, 18, 10, tzinfo=UTC)


def test_stale_intraday_yields_bars_but_no_quote() -> None:
    """Read a day later, the bars are history: kept, reply tagged stale, no quote posing as current."""
    result = normalize(
        "TIME_SERIES_INTRADAY",
        {},
        payload("intraday_ibm_5min.json"),
        context=context(datetime(2020, 5, 9, 18, 0, tzinfo=UTC)),
    )

    assert [type(record) for record in result.records] == [Bar, Bar]
    assert result.flags == ["stale"]


def test_quote_from_intraday_can_be_turned_off() -> None:
    """``quote_from_intraday=False`` gives bars only."""
    ctx = context(IBM_INGEST, quote_from_intraday=False)
    result = normalize("TIME_SERIES_INTRADAY", {}, payload("intraday_ibm_5min.json"), context=ctx)

    assert [type(record) for record in result.records] == [Bar, Bar]


@pytest.mark.parametrize(
    ("wall", "utc"),
    [
        ("2024-03-08 15:55:00", datetime(2024, 3, 8, 20, 55, tzinfo=UTC)),  # Friday, EST
        ("2024-03-10 01:59:00", datetime(2024, 3, 10, 6, 59, tzinfo=UTC)),  # last EST minute
        ("2024-03-10 03:00:00", datetime(2024, 3, 10, 7, 0, tzinfo=UTC)),  # first EDT minute
        ("2024-03-10 02:30:00", datetime(2024, 3, 10, 7, 30, tzinfo=UTC)),  # in the gap: fold=0, EST offset
        ("2024-03-11 09:30:00", datetime(2024, 3, 11, 13, 30, tzinfo=UTC)),  # Monday, EDT
        ("2024-11-01 15:55:00", datetime(2024, 11, 1, 19, 55, tzinfo=UTC)),  # Friday, EDT
        ("2024-11-03 01:30:00", datetime(2024, 11, 3, 5, 30, tzinfo=UTC)),  # repeated hour: fold=0, first (EDT)
        ("2024-11-03 02:00:00", datetime(2024, 11, 3, 7, 0, tzinfo=UTC)),  # EST again
        ("2024-11-04 09:30:00", datetime(2024, 11, 4, 14, 30, tzinfo=UTC)),  # Monday, EST
        ("2024-11-04 09:30", datetime(2024, 11, 4, 14, 30, tzinfo=UTC)),  # indicator keys have no seconds
        ("20241104T093000", datetime(2024, 11, 4, 14, 30, tzinfo=UTC)),  # news time_published
    ],
)
def test_dst_boundaries(wall: str, utc: datetime) -> None:
    """US/Eastern wall times around both 2024 DST switches map to the right UTC instant."""
    assert parse_eastern_timestamp(wall) == utc


def _bars(*keys: str) -> dict[str, tuple[str, ...]]:
    return {key: ("100.10", "100.50", "99.90", "100.20", str(1000 + i)) for i, key in enumerate(keys)}


def test_bars_across_the_dst_switch_are_an_hour_closer_in_utc() -> None:
    """Friday 15:59 EST and Monday 09:30 EDT: 65 h 31 min apart on the wall clock, 64 h 31 min in UTC."""
    body = intraday_json("SPY", "1min", _bars("2024-03-08 15:59:00", "2024-03-11 09:30:00"))
    bars = [r for r in normalize("TIME_SERIES_INTRADAY", {}, body, context=context()).records if isinstance(r, Bar)]

    assert [b.event_time for b in bars] == [
        datetime(2024, 3, 8, 20, 59, tzinfo=UTC),
        datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
    ]


def test_intraday_csv_and_json_give_identical_records() -> None:
    """The same bars as JSON and CSV normalize to equal records (CSV takes symbol and interval from the request)."""
    bars = _bars(*(f"2024-06-03 {10 + i // 60:02d}:{i % 60:02d}:00" for i in range(90)))
    params = {"symbol": "SPY", "interval": "1min"}
    from_json = normalize("TIME_SERIES_INTRADAY", params, intraday_json("SPY", "1min", bars), context=context())
    from_csv = normalize("TIME_SERIES_INTRADAY", params, intraday_csv(bars), context=context())

    assert from_json.records == from_csv.records
    assert from_json.rows_out == 90


def test_repeated_timestamp_keeps_the_first_row() -> None:
    """Two CSV rows for one minute: AlphaVantage's first listing is kept, the other rejected, not merged."""
    body = to_csv(
        ("timestamp", "open", "high", "low", "close", "volume"),
        [
            ("2024-06-03 10:01:00", "10", "11", "9", "10.5", "100"),
            ("2024-06-03 10:00:00", "10", "11", "9", "10.2", "100"),
            ("2024-06-03 10:00:00", "20", "21", "19", "20.2", "100"),
        ],
    )
    result = normalize("TIME_SERIES_INTRADAY", {"symbol": "SPY", "interval": "1min"}, body, context=context())

    bars = [r for r in result.records if isinstance(r, Bar)]
    assert [b.close for b in bars] == [10.2, 10.5]
    assert [(r.reason, r.row_index) for r in result.rejected_rows] == [("duplicate_timestamp", 2)]


def test_bad_bars_are_rejected_and_good_ones_kept() -> None:
    """Garbage, a gap and an impossible range each reject one bar, with a reason."""
    bars = _bars("2024-06-03 10:00:00", "2024-06-03 10:01:00", "2024-06-03 10:02:00", "2024-06-03 10:03:00")
    bars["2024-06-03 10:01:00"] = ("abc", "1", "1", "1", "1")
    bars["2024-06-03 10:02:00"] = ("1", "1", "None", "1", "1")
    bars["2024-06-03 10:03:00"] = ("1", "0.5", "2", "1", "1")
    result = normalize("TIME_SERIES_INTRADAY", {}, intraday_json("SPY", "1min", bars), context=context())

    assert sorted(r.reason for r in result.rejected_rows) == ["bad_value", "invalid_bar", "missing_value"]
    assert [r.close for r in result.records if isinstance(r, Bar)] == [100.2]
    assert result.rows_in == result.rows_out + len(result.rejected_rows)


def test_reference_global_quote() -> None:
    """The reference's IBM quote: last = price, day volume, stamped at that session's close (20:00 UTC)."""
    result = normalize(
        "GLOBAL_QUOTE",
        {"symbol": "IBM"},
        payload("global_quote_ibm.json"),
        context=context(datetime(2020, 5, 8, 20, 5, tzinfo=UTC)),
    )

    [quote] = result.records
    assert isinstance(quote, UnderlyingQuote)
    assert (quote.symbol, quote.last, quote.volume, quote.bid, quote.ask) == ("IBM", 121.74, 2528814.0, None, None)
    assert quote.event_time == datetime(2020, 5, 8, 20, 0, tzinfo=UTC)
    assert result.flags == []


def test_delayed_global_quote_key_and_csv_form_match() -> None:
    """The ``- DATA DELAYED BY 15 MINUTES`` decoration and the CSV form give the same quote."""
    delayed = payload("global_quote_ibm.json").replace(
        b'"Global Quote"', b'"Global Quote - DATA DELAYED BY 15 MINUTES"'
    )
    csv_body = to_csv(
        ("symbol", "open", "high", "low", "price", "volume", "latestDay", "previousClose", "change", "changePercent"),
        [
            (
                "IBM",
                "122.6700",
                "122.8000",
                "121.0600",
                "121.7400",
                "2528814",
                "2020-05-08",
                "121.2300",
                "0.5100",
                "0.4207%",
            )
        ],
    )
    ctx = context(datetime(2020, 5, 11, 14, 0, tzinfo=UTC))
    from_json = normalize("GLOBAL_QUOTE", {}, delayed, context=ctx)
    from_csv = normalize("GLOBAL_QUOTE", {}, csv_body, context=ctx)

    assert from_json.records == from_csv.records and len(from_json.records) == 1
    assert from_json.flags == ["stale"]


def test_unknown_symbol_quote_is_an_empty_result_with_a_reason() -> None:
    """``{"Global Quote": {}}`` is AlphaVantage's unknown-symbol answer: no records, no error."""
    result = normalize(
        "GLOBAL_QUOTE", {"symbol": "NOPE"}, payload("global_quote_unknown_symbol.json"), context=context()
    )

    assert (result.records, result.empty_reason, result.flags, result.rows_in) == ([], "unknown_symbol", ["empty"], 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty_body"),
        (b"   \n", "empty_body"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "bad_shape"),
        (b"{}", "empty_object"),
        (b"<html><body>application error</body></html>", "html_body"),
        (
            b'{"Error Message": "Invalid API call. Please retry or visit the documentation '
            b'(https://www.alphavantage.co/documentation/) for TIME_SERIES_INTRADAY."}',
            "api_error",
        ),
        (
            b'{"Information": "Thank you for using Alpha Vantage! Please contact premium@alphavantage.co if you are '
            b'targeting a higher API call volume."}',
            "api_message",
        ),
        (
            b'{"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute."}',
            "api_message",
        ),
        (b'{"Meta Data": {"2. Symbol": "IBM", "4. Interval": "5min"}}', "missing_section"),
        (b'{"Meta Data": {"2. Symbol": "IBM", "4. Interval": "7min"}, "Time Series (7min)": {}}', "bad_interval"),
        (
            b'{"Meta Data": {"4. Interval": "5min", "6. Time Zone": "UTC"}, "Time Series (5min)": {}}',
            "unsupported_time_zone",
        ),
        (b'{"Meta Data": {"4. Interval": "5min"}, "Time Series (5min)": []}', "missing_parameter"),
        (b"open,high\r\n1,2\r\n", "missing_parameter"),
    ],
)
def test_unreadable_payloads_raise_record_decode_error(body: bytes, reason: str) -> None:
    """A payload that is unreadable as a whole raises RecordDecodeError(topic alphavantage) naming the function."""
    with pytest.raises(RecordDecodeError) as excinfo:
        normalize("TIME_SERIES_INTRADAY", {}, body, context=context())

    assert (excinfo.value.topic, excinfo.value.reason) == ("alphavantage", reason)
    assert excinfo.value.detail.startswith("TIME_SERIES_INTRADAY:")


def test_unknown_function_raises() -> None:
    """A function without a normalizer is a decode error, not a KeyError."""
    with pytest.raises(RecordDecodeError) as excinfo:
        normalize("TIME_SERIES_WEEKLY", {}, b"{}", context=context())

    assert excinfo.value.reason == "unsupported_function"


def test_echoed_api_key_never_reaches_the_error() -> None:
    """The daily-cap text quotes the caller's key; the dead-letter detail must not."""
    body = (
        b'{"Information": "We have detected your API key as ABCD1234EFGH5678 and our standard API rate limit '
        b'is 25 requests per day."}'
    )
    with pytest.raises(RecordDecodeError) as excinfo:
        normalize("GLOBAL_QUOTE", {}, body, context=context())

    assert "ABCD1234EFGH5678" not in str(excinfo.value)
    assert "API key as ***" in excinfo.value.detail  # the package-wide redaction marker

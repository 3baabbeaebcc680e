"""Technical indicators (all 19), macro series (all 10, "." gaps) and NEWS_SENTIMENT normalization."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pytest

from quanticity.data_ingestion.normalize_contract import RowFlag
from quanticity.data_ingestion.normalize_indicators import INDICATORS
from quanticity.data_ingestion.normalize_reference import MACRO
from quanticity.data_ingestion.normalizer import normalize
from quanticity.errors import RecordDecodeError
from quanticity.schemas import IndicatorSeries, MacroSeries, NewsItem, stable_id
from tests.unit.data_ingestion.test_normalizer_builders import (
    context,
    indicator_csv,
    indicator_json,
    macro_csv,
    macro_json,
    payload,
)

# Meta Data parameter keys per indicator family, as the reference (§5) spells them.
_META = {
    "series": {"5: Time Period": 20, "6: Series Type": "close", "7: Time Zone": "US/Eastern"},
    "period": {"5: Time Period": 14, "6: Time Zone": "US/Eastern Time"},
    "MACD": {
        "5.1: Fast Period": 12,
        "5.2: Slow Period": 26,
        "5.3: Signal Period": 9,
        "6: Series Type": "close",
        "7: Time Zone": "US/Eastern",
    },
    "STOCH": {
        "5.1: FastK Period": 5,
        "5.2: SlowK Period": 3,
        "5.3: SlowK MA Type": 0,
        "5.4: SlowD Period": 3,
        "5.5: SlowD MA Type": 0,
        "6: Time Zone": "US/Eastern Time",
    },
    "STOCHF": {
        "5.1: FastK Period": 5,
        "5.2: FastD Period": 3,
        "5.3: FastD MA Type": 0,
        "6: Time Zone": "US/Eastern Time",
    },
    "BBANDS": {
        "5: Time Period": 20,
        "6.1: Deviation multiplier for upper band": 2,
        "6.2: Deviation multiplier for lower band": 2,
        "6.3: MA Type": 0,
        "7: Series Type": "close",
        "8: Time Zone": "US/Eastern Time",
    },
    "plain": {"5: Time Zone": "US/Eastern"},
}
_FAMILY = {
    **dict.fromkeys(("SMA", "EMA", "WMA", "DEMA", "TEMA", "RSI"), "series"),
    **dict.fromkeys(("WILLR", "ADX", "CCI", "MFI", "MINUS_DI", "PLUS_DI", "AROON"), "period"),
    "MACD": "MACD",
    "STOCH": "STOCH",
    "STOCHF": "STOCHF",
    "BBANDS": "BBANDS",
    "OBV": "plain",
    "VWAP": "plain",
}
_PARAMS = {
    "series": {"time_period": "20", "series_type": "close"},
    "period": {"time_period": "14"},
    "MACD": {"series_type": "close"},
    "STOCH": {},
    "STOCHF": {},
    "BBANDS": {"time_period": "20", "series_type": "close"},
    "plain": {},
}
KEYS = ("2024-11-01 15:58", "2024-11-01 15:59", "2024-11-04 09:30", "2024-11-04 09:31")


def test_all_nineteen_scheduled_indicators_are_covered() -> None:
    """The normalizer knows exactly the indicators the issue's round-robin polls."""
    scheduled = "SMA EMA WMA DEMA TEMA WILLR RSI STOCH STOCHF MACD BBANDS ADX CCI MFI MINUS_DI PLUS_DI OBV AROON VWAP"
    assert set(INDICATORS) == set(scheduled.split()) == set(_FAMILY)


def _rows(function: str) -> dict[str, dict[str, str]]:
    value_keys = INDICATORS[function][0]
    return {key: {name: f"{10 * i + j}.{j}25" for j, name in enumerate(value_keys)} for i, key in enumerate(KEYS)}


@pytest.mark.parametrize("function", sorted(INDICATORS))
def test_every_indicator_json_and_csv(function: str) -> None:
    """Each indicator: multi-value columns, intraday keys across DST made aware, parameters, CSV = JSON."""
    family = _FAMILY[function]
    rows = _rows(function)
    value_keys = INDICATORS[function][0]
    params = {"symbol": "SPY", "interval": "1min", **_PARAMS[family]}
    ctx = context()
    from_json = normalize(function, params, indicator_json(function, "SPY", "1min", _META[family], rows), context=ctx)
    from_csv = normalize(function, params, indicator_csv(rows, value_keys[::-1]), context=ctx)

    [series] = from_json.records
    assert isinstance(series, IndicatorSeries)
    assert (series.symbol, series.function, series.interval) == ("SPY", function, "1min")
    assert series.timestamps == [
        datetime(2024, 11, 1, 19, 58, tzinfo=UTC),
        datetime(2024, 11, 1, 19, 59, tzinfo=UTC),
        datetime(2024, 11, 4, 14, 30, tzinfo=UTC),
        datetime(2024, 11, 4, 14, 31, tzinfo=UTC),
    ]
    assert list(series.values) == list(value_keys)
    assert series.values[value_keys[0]] == [0.025, 10.025, 20.025, 30.025]
    assert series.event_time == series.timestamps[-1]
    assert from_csv.records == from_json.records
    assert (from_json.rows_in, from_json.rows_out, from_json.rejected_rows) == (4, 4, [])


def test_indicator_parameters_come_from_request_meta_and_defaults() -> None:
    """STOCH with no parameters in the request: Meta Data and the documented defaults fill them in."""
    rows = _rows("STOCH")
    [from_meta] = normalize(
        "STOCH",
        {"symbol": "SPY", "interval": "daily"},
        indicator_json(
            "STOCH", "SPY", "daily", {**_META["STOCH"], "5.1: FastK Period": 7}, {} | {"2024-11-01": rows[KEYS[0]]}
        ),
        context=context(),
    ).records
    assert isinstance(from_meta, IndicatorSeries)
    assert from_meta.parameters == {
        "fastkperiod": 7,
        "slowkperiod": 3,
        "slowdperiod": 3,
        "slowkmatype": 0,
        "slowdmatype": 0,
    }


def test_reference_willr_daily() -> None:
    """The reference's MSFT WILLR: date keys stamped at the 16:00 close, oldest first, exact values."""
    result = normalize("WILLR", {}, payload("willr_msft_daily.json"), context=context())

    [series] = result.records
    assert isinstance(series, IndicatorSeries)
    assert series.symbol == "MSFT" and series.interval == "daily"
    assert series.parameters == {"time_period": 10}
    assert series.timestamps == [datetime(2019, 3, 11, 20, 0, tzinfo=UTC), datetime(2019, 3, 12, 20, 0, tzinfo=UTC)]
    assert series.values == {"WILLR": [-9.4382, -7.1291]}


def test_reference_macd_intraday_row() -> None:
    """The reference's intraday MACD entry (key without seconds, 16:00 EST) → 21:00 UTC, three columns."""
    row = {"MACD_Hist": "0.0197", "MACD_Signal": "-0.1967", "MACD": "-0.1770"}
    body = indicator_json("MACD", "MSFT", "60min", _META["MACD"], {"2017-12-14 16:00": row})
    [series] = normalize("MACD", {}, body, context=context()).records

    assert isinstance(series, IndicatorSeries)
    assert series.timestamps == [datetime(2017, 12, 14, 21, 0, tzinfo=UTC)]
    assert series.values == {"MACD": [-0.177], "MACD_Signal": [-0.1967], "MACD_Hist": [0.0197]}
    assert series.parameters == {"series_type": "close", "fastperiod": 12, "slowperiod": 26, "signalperiod": 9}


def test_indicator_partial_garbage_is_flagged_and_full_garbage_rejected() -> None:
    """One bad value of three is withheld and flagged; an entry with none usable is rejected."""
    rows = _rows("BBANDS")
    rows[KEYS[1]]["Real Middle Band"] = "n/a"
    rows[KEYS[2]] = {name: "-" for name in rows[KEYS[2]]}
    result = normalize("BBANDS", {}, indicator_json("BBANDS", "SPY", "1min", _META["BBANDS"], rows), context=context())

    [series] = result.records
    assert isinstance(series, IndicatorSeries)
    assert series.values["Real Middle Band"] == [1.125, None, 31.125]
    assert result.row_flags == [RowFlag(2, "2024-11-01T19:59:00+00:00", ("bad_Real Middle Band",))]
    assert [(r.reason, r.row_index) for r in result.rejected_rows] == [("no_values", 1)]


@pytest.mark.parametrize("function", sorted(MACRO))
def test_every_macro_series_with_gaps(function: str) -> None:
    """Each macro function: newest-first input reordered, "." gaps → None, CSV = JSON."""
    name, interval, unit = MACRO[function]
    observations = {"2024-01-01": "3.1", "2024-02-01": ".", "2024-03-01": "3.4", "2024-04-01": "3.45"}
    ctx = context()
    from_json = normalize(function, {}, macro_json(name, interval, unit, observations), context=ctx)
    from_csv = normalize(function, {}, macro_csv(observations), context=ctx)

    [series] = from_json.records
    assert isinstance(series, MacroSeries)
    assert (series.function, series.name, series.interval, series.unit) == (function, name, interval, unit)
    assert series.dates == [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)]
    assert series.values == [3.1, None, 3.4, 3.45]
    assert from_csv.records == from_json.records
    assert "gaps" in from_json.flags and from_json.rejected_rows == []


def test_reference_treasury_yield() -> None:
    """The reference's 10-year yield, exact and oldest first."""
    [series] = normalize("TREASURY_YIELD", {}, payload("treasury_yield_monthly.json"), context=context()).records

    assert isinstance(series, MacroSeries)
    assert series.name == "10-Year Treasury Constant Maturity Rate"
    assert series.parameters == {"maturity": "10year"}
    assert (series.dates, series.values) == ([date(2022, 3, 1), date(2022, 4, 1)], [2.13, 2.75])
    assert series.event_time == datetime(2022, 4, 1, 20, 0, tzinfo=UTC)


def test_macro_bad_rows_are_rejected_and_duplicates_resolved() -> None:
    """A garbage value and a bad date reject their rows; a repeated date keeps the first listing."""
    body = orjson.dumps(
        {
            "name": "Unemployment Rate",
            "interval": "monthly",
            "unit": "percent",
            "data": [
                {"date": "2024-03-01", "value": "3.9"},
                {"date": "2024-03-01", "value": "4.9"},
                {"date": "2024-02-30", "value": "3.8"},
                {"date": "2024-01-01", "value": "three"},
                {"date": "2023-12-01", "value": "3.7"},
            ],
        }
    )
    result = normalize("UNEMPLOYMENT", {}, body, context=context())

    [series] = result.records
    assert isinstance(series, MacroSeries)
    assert (series.dates, series.values) == ([date(2023, 12, 1), date(2024, 3, 1)], [3.7, 3.9])
    assert sorted((r.reason, r.row_index) for r in result.rejected_rows) == [
        ("bad_value", 2),
        ("bad_value", 3),
        ("duplicate_date", 1),
    ]


def test_reference_news_item() -> None:
    """The reference's NEWS_SENTIMENT article: URL-keyed id, US/Eastern time made aware, scores as floats."""
    result = normalize("NEWS_SENTIMENT", {"tickers": "AAPL"}, payload("news_sentiment.json"), context=context())

    [item] = result.records
    assert isinstance(item, NewsItem)
    url = "https://www.cnbc.com/2022/06/19/top-wall-street-analysts-say-to-buy-apple-bank-of-america.html"
    assert item.url == url and item.record_id == stable_id("alphavantage", "news", url)
    assert item.event_time == datetime(2022, 6, 19, 16, 47, 3, tzinfo=UTC)
    assert (item.overall_sentiment_score, item.overall_sentiment_label) == (-0.001195, "Neutral")
    assert item.topics == {"Technology": 0.5, "Finance": 0.5}
    assert [(t.ticker, t.relevance_score, t.sentiment_score, t.sentiment_label) for t in item.tickers] == [
        ("AAPL", 0.164431, 0.040582, "Neutral")
    ]
    assert (item.source_name, item.summary) == ("CNBC", "TipRanks analyst ranking ...")


def test_news_bad_entries_duplicates_and_empty_feed() -> None:
    """A bad ticker entry is dropped and flagged; a repeated URL is rejected; an empty feed is empty."""
    document = orjson.loads(payload("news_sentiment.json"))
    article = document["feed"][0]
    broken = {**article, "ticker_sentiment": [*article["ticker_sentiment"], {"ticker": "X", "relevance_score": "2"}]}
    later = {**article, "time_published": "20220620T090000", "url": "https://example.com/b"}
    document["feed"] = [broken, later, {**article, "time_published": "nope"}, {**article}]
    result = normalize("NEWS_SENTIMENT", {}, orjson.dumps(document), context=context())

    assert [item.url for item in result.records if isinstance(item, NewsItem)] == [article["url"], later["url"]]
    assert result.row_flags == [RowFlag(0, article["url"], ("bad_ticker_sentiment:1",))]
    assert sorted((r.reason, r.row_index) for r in result.rejected_rows) == [("bad_value", 2), ("duplicate_url", 3)]

    empty = normalize("NEWS_SENTIMENT", {}, b'{"items": "0", "feed": []}', context=context())
    assert (empty.records, empty.empty_reason) == ([], "no_articles")


def test_news_without_feed_and_news_as_csv_are_decode_errors() -> None:
    """NEWS_SENTIMENT answers JSON only; a reply without ``feed`` cannot be read."""
    for body, reason in ((b'{"items": "0"}', "missing_section"), (b"title,url\r\n", "not_json")):
        with pytest.raises(RecordDecodeError) as excinfo:
            normalize("NEWS_SENTIMENT", {}, body, context=context())
        assert excinfo.value.reason == reason

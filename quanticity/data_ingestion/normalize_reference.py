"""Macro series (reference §6) → ``MacroSeries``; NEWS_SENTIMENT (§7) → ``NewsItem`` records.

Macro observations are dated (``YYYY-MM-DD``, newest first); FRED's ``"."`` marks a
missing observation and becomes ``None`` in place, because a gap is data. A value that
is neither a number nor a gap rejects its row. A date is stamped at that day's US session
close, as for daily indicators.

News items are keyed by URL (``record_id`` = ``stable_id`` of it), so the same article
fetched by overlapping polls is one record. ``time_published`` is ``YYYYMMDDTHHMMSS`` in
US/Eastern. A malformed topic or ticker entry is left out of its item and named in
``row_flags``; the article itself is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from quanticity.data_ingestion.av_csv import CsvShapeError, read_csv_columns
from quanticity.data_ingestion.av_sections import in_time_order
from quanticity.data_ingestion.av_values import (
    describe,
    parse_date,
    parse_eastern_timestamp,
    parse_number,
    session_close_utc,
    string_column,
)
from quanticity.data_ingestion.normalize_contract import NormalizeContext, NormalizeResult, RowFlag, decode_error
from quanticity.schemas.base import stable_id
from quanticity.schemas.reference import MacroSeries, NewsItem, TickerSentiment

# function → (name, default interval, unit), as AlphaVantage labels them (reference §6).
# The CSV form carries none of these, so they come from here; JSON replies use their own.
MACRO: Mapping[str, tuple[str, str, str]] = {
    "REAL_GDP": ("Real Gross Domestic Product", "annual", "billions of dollars"),
    "REAL_GDP_PER_CAPITA": ("Real Gross Domestic Product per Capita", "quarterly", "chained 2012 dollars"),
    "TREASURY_YIELD": ("10-Year Treasury Constant Maturity Rate", "monthly", "percent"),
    "FEDERAL_FUNDS_RATE": ("Effective Federal Funds Rate", "monthly", "percent"),
    "CPI": ("Consumer Price Index for all Urban Consumers", "monthly", "index 1982-1984=100"),
    "INFLATION": ("Inflation - US Consumer Prices", "annual", "percent"),
    "RETAIL_SALES": ("Advance Retail Sales: Retail Trade", "monthly", "millions of dollars"),
    "DURABLES": ("Manufacturer New Orders: Durable Goods", "monthly", "millions of dollars"),
    "UNEMPLOYMENT": ("Unemployment Rate", "monthly", "percent"),
    "NONFARM_PAYROLL": ("Total Nonfarm Payroll", "monthly", "thousands of persons"),
}
# Other maturities follow FRED's naming; the reference marks them unverified.
_TREASURY_NAMES = {
    "3month": "3-Month Treasury Constant Maturity Rate",
    "2year": "2-Year Treasury Constant Maturity Rate",
    "5year": "5-Year Treasury Constant Maturity Rate",
    "7year": "7-Year Treasury Constant Maturity Rate",
    "10year": "10-Year Treasury Constant Maturity Rate",
    "30year": "30-Year Treasury Constant Maturity Rate",
}

# A macro row as read from either form: (row index, date cell, value cell).
_MacroRow = tuple[int, object, object]


def normalize_macro_json(
    function: str, params: Mapping[str, str], payload: Mapping[str, Any], context: NormalizeContext
) -> NormalizeResult:
    """Normalize a macro JSON reply (``{"name", "interval", "unit", "data": [...]}``).

    Raises:
        RecordDecodeError: no ``data`` list.
    """
    data = payload.get("data")
    if not isinstance(data, list):
        raise decode_error(function, "missing_section", f"no 'data' list (keys: {sorted(map(str, payload))[:8]})")
    result = NormalizeResult(function, rows_in=len(data))
    rows: list[_MacroRow] = []
    for index, row in enumerate(data):
        if isinstance(row, Mapping):
            rows.append((index, row.get("date"), row.get("value")))
        else:
            result.reject("not_an_object", f"observation is {type(row).__name__}", index)
    labels = {name: payload.get(name) for name in ("name", "interval", "unit")}
    _macro(function, params, labels, rows, context, result)
    return result


def normalize_macro_csv(
    function: str, params: Mapping[str, str], body: bytes, context: NormalizeContext
) -> NormalizeResult:
    """Normalize a macro CSV reply (``timestamp,value``; ``date,value`` is accepted too).

    Raises:
        RecordDecodeError: no date or value column.
    """
    try:
        table = read_csv_columns(body)
    except CsvShapeError as exc:
        raise decode_error(function, "bad_csv", str(exc)) from exc
    date_column = next((name for name in ("timestamp", "date") if name in table.header), None)
    if date_column is None or "value" not in table.header:
        raise decode_error(function, "missing_column", f"CSV header needs timestamp and value: {list(table.header)}")
    result = NormalizeResult(function, rows_in=table.rows_in)
    for index, detail in table.ragged:
        result.reject("ragged_row", detail, index)
    dates = string_column(table.columns[date_column], table.rows)
    values = string_column(table.columns["value"], table.rows)
    rows = [(index, dates[pos], values[pos]) for pos, index in enumerate(table.row_ids)]
    _macro(function, params, {}, rows, context, result)
    return result


def _macro(
    function: str,
    params: Mapping[str, str],
    labels: Mapping[str, object],
    rows: list[_MacroRow],
    context: NormalizeContext,
    result: NormalizeResult,
) -> None:
    name, default_interval, unit = MACRO[function]
    parameters: dict[str, str] = {}
    if function == "TREASURY_YIELD":
        parameters["maturity"] = params.get("maturity", "10year")
        name = _TREASURY_NAMES.get(parameters["maturity"], name)
    name = _label(labels.get("name"), name)
    interval = _label(labels.get("interval"), params.get("interval", default_interval))
    unit = _label(labels.get("unit"), unit)
    timed: list[tuple[datetime, int, tuple[date, float | None]]] = []
    for index, cell, raw in rows:
        try:
            day = parse_date(cell)
            value = parse_number(raw)
        except ValueError as exc:
            result.reject("bad_value", str(exc), index)
            continue
        timed.append((session_close_utc(day), index, (day, value)))
    ordered = in_time_order(timed, result, "date")
    if result.rejected_rows:
        result.flag("partial")
    if not ordered:
        result.mark_empty("no_data")
        return
    dates = [day for _, _, (day, _) in ordered]
    values = [value for _, _, (_, value) in ordered]
    newest = ordered[-1][0]
    try:
        series = MacroSeries(
            **context.envelope(),
            record_id=stable_id("alphavantage", function, interval, sorted(parameters.items()), dates[-1], values),
            event_time=newest,
            function=function,
            name=name,
            interval=interval,
            unit=unit,
            parameters=parameters,
            dates=dates,
            values=values,
        )
    except ValidationError as exc:
        for _, index, _ in ordered:
            result.reject("invalid_record", f"{function}: {exc.errors()[0]['msg']}", index)
        return
    if any(value is None for value in values):
        result.flag("gaps")
    if context.is_stale(function, newest):
        result.flag("stale")
    result.records.append(series)
    result.rows_out = len(ordered)


def _label(value: object, fallback: str) -> str:
    return value if isinstance(value, str) and value else fallback


def normalize_news_json(
    function: str, params: Mapping[str, str], payload: Mapping[str, Any], context: NormalizeContext
) -> NormalizeResult:
    """Normalize a NEWS_SENTIMENT reply into one ``NewsItem`` per article, oldest first.

    Raises:
        RecordDecodeError: no ``feed`` list.
    """
    feed = payload.get("feed")
    if not isinstance(feed, list):
        raise decode_error(function, "missing_section", f"no 'feed' list (keys: {sorted(map(str, payload))[:8]})")
    result = NormalizeResult(function, rows_in=len(feed))
    if not feed:
        result.mark_empty("no_articles")
        return result
    items: list[tuple[datetime, int, NewsItem]] = []
    for index, article in enumerate(feed):
        item = _article(index, article, context, result)
        if item is not None:
            items.append((item.event_time, index, item))
    items.sort(key=lambda entry: (entry[0], entry[1]))
    first_by_url: dict[str, int] = {}
    # Duplicates are judged in payload order so that the first listing wins, as elsewhere.
    for _, index, item in sorted(items, key=lambda entry: entry[1]):
        first_by_url.setdefault(item.url, index)
    for _, index, item in items:
        if first_by_url[item.url] != index:
            result.reject("duplicate_url", f"{item.url} repeats row {first_by_url[item.url]}", index)
            continue
        result.records.append(item)
        result.rows_out += 1
    if result.rejected_rows:
        result.flag("partial")
    return result


def _article(index: int, article: object, context: NormalizeContext, result: NormalizeResult) -> NewsItem | None:
    """One feed entry as a ``NewsItem``, or ``None`` after rejecting it."""
    if not isinstance(article, Mapping):
        result.reject("not_an_object", f"article is {type(article).__name__}", index)
        return None
    url, title = article.get("url"), article.get("title")
    if not isinstance(url, str) or not url or not isinstance(title, str):
        result.reject("missing_field", f"article needs url and title (url {describe(url)})", index)
        return None
    try:
        published = parse_eastern_timestamp(article.get("time_published"))
        score = parse_number(article.get("overall_sentiment_score"))
    except ValueError as exc:
        result.reject("bad_value", f"{url}: {exc}", index)
        return None
    label = article.get("overall_sentiment_label")
    if score is None or not isinstance(label, str):
        result.reject("missing_field", f"{url}: no overall sentiment score and label", index)
        return None
    flags: list[str] = []
    topics = _topics(article.get("topics"), flags)
    tickers = _tickers(article.get("ticker_sentiment"), flags)
    summary, source = article.get("summary"), article.get("source")
    try:
        item = NewsItem(
            **context.envelope(),
            record_id=stable_id("alphavantage", "news", url),
            event_time=published,
            title=title,
            url=url,
            summary=summary if isinstance(summary, str) else "",
            source_name=source if isinstance(source, str) else "",
            topics=topics,
            overall_sentiment_score=score,
            overall_sentiment_label=label,
            tickers=tickers,
        )
    except ValidationError as exc:
        result.reject("invalid_record", f"{url}: {exc.errors()[0]['msg']}", index)
        return None
    if flags:
        result.row_flags.append(RowFlag(index, url, tuple(flags)))
    return item


def _topics(entries: object, flags: list[str]) -> dict[str, float]:
    topics: dict[str, float] = {}
    for position, entry in enumerate(entries if isinstance(entries, list) else []):
        try:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("topic"), str):
                raise ValueError("not a topic entry")
            score = parse_number(entry.get("relevance_score"))
            if score is None:
                raise ValueError("no relevance score")
        except ValueError:
            flags.append(f"bad_topic:{position}")
            continue
        topics[str(entry["topic"])] = score
    if entries is not None and not isinstance(entries, list):
        flags.append("bad_topics")
    return topics


def _tickers(entries: object, flags: list[str]) -> list[TickerSentiment]:
    tickers: list[TickerSentiment] = []
    for position, entry in enumerate(entries if isinstance(entries, list) else []):
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("not a ticker entry")
            tickers.append(
                TickerSentiment(
                    ticker=entry.get("ticker"),
                    relevance_score=parse_number(entry.get("relevance_score")),
                    sentiment_score=parse_number(entry.get("ticker_sentiment_score")),
                    sentiment_label=entry.get("ticker_sentiment_label"),
                )
            )
        except (ValueError, ValidationError):
            flags.append(f"bad_ticker_sentiment:{position}")
    if entries is not None and not isinstance(entries, list):
        flags.append("bad_ticker_sentiment")
    return tickers

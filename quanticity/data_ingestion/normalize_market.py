"""TIME_SERIES_INTRADAY → ``Bar`` records; GLOBAL_QUOTE → ``UnderlyingQuote``.

Bars. Keys are naive US/Eastern wall-clock times, made aware through the tz database
(DST included) and emitted oldest first. A key is taken as the bar's start, which is what
``Bar.event_time`` means: AlphaVantage's extended-hours 1-minute series run 04:00…19:59,
so a key names the minute that begins there.

The newest bar also yields an ``UnderlyingQuote`` with ``last`` = its close, stamped at
the bar's end. The scheduler polls no GLOBAL_QUOTE for the hot symbols; this 1-minute
close is AlphaVantage's freshest underlying price, and the chain analytics need one. It
is emitted only while fresh (context staleness): a stale close posing as the current
price would mislead the latest-quotes table, and the bars already carry the history.

GLOBAL_QUOTE carries only a trading date. Its quote is stamped at that session's close,
or at receipt if earlier (realtime entitlement during the session). A stale quote is still
emitted, as it is the explicit answer to the request, with the reply tagged ``stale``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from quanticity.data_ingestion.av_csv import CsvShapeError, read_csv_columns
from quanticity.data_ingestion.av_sections import (
    INTRADAY_SECONDS,
    check_time_zone,
    find_section,
    in_time_order,
    is_symbol,
    keyed_rows,
    meta_fields,
    reply_symbol,
    reply_text,
)
from quanticity.data_ingestion.av_values import (
    describe,
    parse_date,
    parse_eastern_timestamp,
    parse_number,
    session_close_utc,
    string_column,
)
from quanticity.data_ingestion.normalize_contract import NormalizeContext, NormalizeResult, decode_error
from quanticity.schemas.base import stable_id
from quanticity.schemas.market import Bar, UnderlyingQuote

_BAR_FIELDS = ("open", "high", "low", "close", "volume")
_QUOTE_CSV = {"symbol": "symbol", "price": "price", "volume": "volume", "latestDay": "latest trading day"}

# A bar row as read from either form: (row index, timestamp cell, cell per _BAR_FIELDS).
_BarRow = tuple[int, object, tuple[object, ...]]


def normalize_intraday_json(
    function: str, params: Mapping[str, str], payload: Mapping[str, Any], context: NormalizeContext
) -> NormalizeResult:
    """Normalize a TIME_SERIES_INTRADAY JSON reply.

    Raises:
        RecordDecodeError: no ``Time Series`` section, no symbol or interval, a foreign time zone.
    """
    meta = meta_fields(payload.get("Meta Data"))
    check_time_zone(function, meta.get("Time Zone"))
    section = find_section(function, payload, "Time Series")
    symbol = reply_symbol(function, meta.get("Symbol"), params.get("symbol"))
    interval_s = _interval_seconds(function, meta.get("Interval"), params.get("interval"))
    rows: list[_BarRow] = []
    result = NormalizeResult(function)
    for index, key, cells in keyed_rows(function, section):
        if not isinstance(cells, Mapping):
            result.reject("not_an_object", f"bar {describe(key)} is {type(cells).__name__}", index)
            continue
        by_name = {_bar_field(name): value for name, value in cells.items() if isinstance(name, str)}
        rows.append((index, key, tuple(by_name.get(name) for name in _BAR_FIELDS)))
    result.rows_in = len(rows) + len(result.rejected_rows)
    _bars(function, symbol, interval_s, rows, context, result)
    return result


def normalize_intraday_csv(
    function: str, params: Mapping[str, str], body: bytes, context: NormalizeContext
) -> NormalizeResult:
    """Normalize a TIME_SERIES_INTRADAY CSV reply (``timestamp,open,high,low,close,volume``).

    Raises:
        RecordDecodeError: a required column, the symbol or the interval is missing.
    """
    symbol = reply_symbol(function, params.get("symbol"))
    interval_s = _interval_seconds(function, params.get("interval"))
    table = _read_csv(function, body, ("timestamp", *_BAR_FIELDS))
    result = NormalizeResult(function, rows_in=table.rows_in)
    for index, detail in table.ragged:
        result.reject("ragged_row", detail, index)
    cells = [string_column(table.columns[name], table.rows) for name in ("timestamp", *_BAR_FIELDS)]
    rows = [
        (table.row_ids[pos], cells[0][pos], tuple(column[pos] for column in cells[1:])) for pos in range(table.rows)
    ]
    _bars(function, symbol, interval_s, rows, context, result)
    return result


def _bar_field(name: str) -> str:
    """``"1. open"`` → ``"open"``."""
    return name.split(". ", 1)[-1]


def _interval_seconds(function: str, *candidates: object) -> int:
    interval = reply_text(function, "interval", *candidates)
    seconds = INTRADAY_SECONDS.get(interval)
    if seconds is None:
        raise decode_error(
            function, "bad_interval", f"interval {describe(interval)} is not one of {list(INTRADAY_SECONDS)}"
        )
    return seconds


def _read_csv(function: str, body: bytes, required: tuple[str, ...]) -> Any:
    try:
        table = read_csv_columns(body)
    except CsvShapeError as exc:
        raise decode_error(function, "bad_csv", str(exc)) from exc
    missing = [name for name in required if name not in table.header]
    if missing:
        raise decode_error(function, "missing_column", f"CSV header lacks {missing}: {list(table.header)[:12]}")
    return table


def _bars(
    function: str, symbol: str, interval_s: int, rows: list[_BarRow], context: NormalizeContext, result: NormalizeResult
) -> None:
    """Validate bar rows, order them oldest first, and emit bars (and the fresh last close)."""
    if result.rows_in == 0:
        result.mark_empty("no_bars")
        return
    timed: list[tuple[datetime, int, tuple[float, ...]]] = []
    for index, key, cells in rows:
        try:
            start = parse_eastern_timestamp(key)
            values = tuple(parse_number(cell) for cell in cells)
        except ValueError as exc:
            result.reject("bad_value", f"bar {describe(key)}: {exc}", index)
            continue
        if any(value is None for value in values):
            missing = [name for name, value in zip(_BAR_FIELDS, values, strict=True) if value is None]
            result.reject("missing_value", f"bar {describe(key)} lacks {missing}", index)
            continue
        timed.append((start, index, tuple(value for value in values if value is not None)))
    bars: list[Bar] = []
    for start, index, (open_, high, low, close, volume) in in_time_order(timed, result):
        try:
            bars.append(
                Bar(
                    **context.envelope(),
                    record_id=stable_id("alphavantage", "bar", symbol, interval_s, start.isoformat()),
                    event_time=start,
                    symbol=symbol,
                    interval_s=interval_s,
                    open=open_,
                    high=high,
                    low=low,
                    close=close,
                    volume=volume,
                )
            )
        except ValidationError as exc:
            result.reject("invalid_bar", f"bar {start.isoformat()}: {exc.errors()[0]['msg']}", index)
    result.records.extend(bars)
    result.rows_out = len(bars)
    if result.rejected_rows:
        result.flag("partial")
    if not bars:
        return
    _quote_from_bar(function, symbol, bars[-1], context, result)


def _quote_from_bar(
    function: str, symbol: str, newest: Bar, context: NormalizeContext, result: NormalizeResult
) -> None:
    """The newest bar's close as the current price, stamped at the bar's end, unless stale."""
    as_of = min(newest.event_time + timedelta(seconds=newest.interval_s), context.ingest_time)
    if context.is_stale(function, as_of):
        result.flag("stale")
    elif context.quote_from_intraday:
        result.records.append(
            UnderlyingQuote(
                **context.envelope(),
                record_id=stable_id("alphavantage", "bar_close_quote", symbol, as_of.isoformat()),
                event_time=as_of,
                symbol=symbol,
                last=newest.close,
            )
        )


def normalize_global_quote_json(
    function: str, params: Mapping[str, str], payload: Mapping[str, Any], context: NormalizeContext
) -> NormalizeResult:
    """Normalize a GLOBAL_QUOTE JSON reply (also the ``- DATA DELAYED BY 15 MINUTES`` key).

    ``{"Global Quote": {}}`` (AlphaVantage's answer for an unknown symbol) gives an empty
    result with ``empty_reason="unknown_symbol"``.

    Raises:
        RecordDecodeError: no ``Global Quote`` section, or it is not an object.
    """
    section = find_section(function, payload, "Global Quote")
    if not isinstance(section, Mapping):
        raise decode_error(function, "bad_shape", f"Global Quote is {type(section).__name__}, not an object")
    result = NormalizeResult(function)
    if not section:
        result.mark_empty("unknown_symbol")
        return result
    fields = {_bar_field(key): value for key, value in section.items() if isinstance(key, str)}
    result.rows_in = 1
    _quote(function, 0, fields, params, context, result)
    return result


def normalize_global_quote_csv(
    function: str, params: Mapping[str, str], body: bytes, context: NormalizeContext
) -> NormalizeResult:
    """Normalize a GLOBAL_QUOTE CSV reply (one row per quote; header only = unknown symbol).

    Raises:
        RecordDecodeError: a required column is missing.
    """
    table = _read_csv(function, body, ("price", "latestDay"))
    result = NormalizeResult(function, rows_in=table.rows_in)
    if table.rows_in == 0:
        result.mark_empty("unknown_symbol")
        return result
    for index, detail in table.ragged:
        result.reject("ragged_row", detail, index)
    cells = {ours: string_column(table.columns.get(name), table.rows) for name, ours in _QUOTE_CSV.items()}
    for pos, index in enumerate(table.row_ids):
        _quote(function, index, {name: column[pos] for name, column in cells.items()}, params, context, result)
    return result


def _quote(
    function: str,
    index: int,
    fields: Mapping[str, object],
    params: Mapping[str, str],
    context: NormalizeContext,
    result: NormalizeResult,
) -> None:
    """One quote row (fields named as in the JSON form, numbering dropped)."""
    symbol = fields.get("symbol") or params.get("symbol")
    if not is_symbol(symbol):
        result.reject("bad_symbol", f"symbol {describe(symbol)}", index)
        return
    try:
        price = parse_number(fields.get("price"))
        volume = parse_number(fields.get("volume"))
        day = parse_date(fields.get("latest trading day"))
    except ValueError as exc:
        result.reject("bad_value", f"quote {symbol}: {exc}", index)
        return
    as_of = min(session_close_utc(day), context.ingest_time)
    try:
        quote = UnderlyingQuote(
            **context.envelope(),
            record_id=stable_id("alphavantage", function, symbol, as_of.isoformat()),
            event_time=as_of,
            symbol=str(symbol),
            last=price,
            volume=volume,
        )
    except ValidationError as exc:
        result.reject("invalid_quote", f"quote {symbol}: {exc.errors()[0]['msg']}", index)
        return
    if context.is_stale(function, as_of):
        result.flag("stale")
    result.records.append(quote)
    result.rows_out += 1

"""Technical-indicator payloads (reference §5) → one ``IndicatorSeries`` per reply.

Keys are ``YYYY-MM-DD HH:MM`` (intraday, naive US/Eastern, no seconds) or ``YYYY-MM-DD``
(daily/weekly/monthly). A date key is stamped at that session's close: a daily value is
not known before it, and stamping it earlier would leak the future into backtests.

``parameters`` are the request's indicator parameters, completed from Meta Data and then
from AlphaVantage's documented defaults, under the request's names (``fastkperiod``,
``series_type``…). The CSV form has no Meta Data, so this is what makes CSV and JSON
replies to the same request give the same record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from quanticity.data_ingestion.av_csv import CsvShapeError, read_csv_columns
from quanticity.data_ingestion.av_sections import (
    check_time_zone,
    find_section,
    in_time_order,
    keyed_rows,
    meta_fields,
    reply_symbol,
    reply_text,
)
from quanticity.data_ingestion.av_values import (
    describe,
    parse_eastern_key,
    parse_number,
    parse_parameter,
    string_column,
)
from quanticity.data_ingestion.normalize_contract import NormalizeContext, NormalizeResult, RowFlag, decode_error
from quanticity.schemas.base import stable_id
from quanticity.schemas.reference import IndicatorSeries

_SERIES = ("time_period", "series_type")
_PERIOD = ("time_period",)

# function → (value keys in AlphaVantage's order, parameter names with their defaults).
INDICATORS: Mapping[str, tuple[tuple[str, ...], dict[str, object]]] = {
    **{name: ((name,), dict.fromkeys(_SERIES)) for name in ("SMA", "EMA", "WMA", "DEMA", "TEMA", "RSI")},
    **{name: ((name,), dict.fromkeys(_PERIOD)) for name in ("WILLR", "ADX", "CCI", "MFI", "MINUS_DI", "PLUS_DI")},
    "STOCH": (
        ("SlowK", "SlowD"),
        {"fastkperiod": 5, "slowkperiod": 3, "slowdperiod": 3, "slowkmatype": 0, "slowdmatype": 0},
    ),
    "STOCHF": (("FastK", "FastD"), {"fastkperiod": 5, "fastdperiod": 3, "fastdmatype": 0}),
    "MACD": (
        ("MACD", "MACD_Signal", "MACD_Hist"),
        {"series_type": None, "fastperiod": 12, "slowperiod": 26, "signalperiod": 9},
    ),
    "BBANDS": (
        ("Real Upper Band", "Real Middle Band", "Real Lower Band"),
        {"time_period": None, "series_type": None, "nbdevup": 2, "nbdevdn": 2, "matype": 0},
    ),
    "OBV": (("OBV",), {}),
    "AROON": (("Aroon Up", "Aroon Down"), dict.fromkeys(_PERIOD)),
    "VWAP": (("VWAP",), {}),
}

# Meta Data label (numbering dropped) → request parameter name.
_META_PARAMETERS = {
    "Time Period": "time_period",
    "Series Type": "series_type",
    "Fast Period": "fastperiod",
    "Slow Period": "slowperiod",
    "Signal Period": "signalperiod",
    "FastK Period": "fastkperiod",
    "SlowK Period": "slowkperiod",
    "SlowK MA Type": "slowkmatype",
    "SlowD Period": "slowdperiod",
    "SlowD MA Type": "slowdmatype",
    "FastD Period": "fastdperiod",
    "FastD MA Type": "fastdmatype",
    "Deviation multiplier for upper band": "nbdevup",
    "Deviation multiplier for lower band": "nbdevdn",
    "MA Type": "matype",
}

# A row as read from either form: (row index, time key, value key → cell).
_Row = tuple[int, object, Mapping[str, object]]


def normalize_indicator_json(
    function: str, params: Mapping[str, str], payload: Mapping[str, Any], context: NormalizeContext
) -> NormalizeResult:
    """Normalize a technical-indicator JSON reply.

    Raises:
        RecordDecodeError: no ``Technical Analysis`` section, no symbol or interval, a
            foreign time zone.
    """
    meta = meta_fields(payload.get("Meta Data"))
    check_time_zone(function, meta.get("Time Zone"))
    section = find_section(function, payload, "Technical Analysis")
    symbol = reply_symbol(function, meta.get("Symbol"), params.get("symbol"))
    interval = reply_text(function, "interval", meta.get("Interval"), params.get("interval"))
    result = NormalizeResult(function)
    rows: list[_Row] = []
    for index, key, cells in keyed_rows(function, section):
        if isinstance(cells, Mapping):
            rows.append((index, key, {name: value for name, value in cells.items() if isinstance(name, str)}))
        else:
            result.reject("not_an_object", f"entry {describe(key)} is {type(cells).__name__}", index)
    result.rows_in = len(rows) + len(result.rejected_rows)
    value_keys = {name for _, _, cells in rows for name in cells}
    _series(function, symbol, interval, _parameters(function, params, meta), value_keys, rows, context, result)
    return result


def normalize_indicator_csv(
    function: str, params: Mapping[str, str], body: bytes, context: NormalizeContext
) -> NormalizeResult:
    """Normalize a technical-indicator CSV reply (``time,<value keys>``).

    Raises:
        RecordDecodeError: no ``time`` column, value column, symbol or interval.
    """
    symbol = reply_symbol(function, params.get("symbol"))
    interval = reply_text(function, "interval", params.get("interval"))
    try:
        table = read_csv_columns(body)
    except CsvShapeError as exc:
        raise decode_error(function, "bad_csv", str(exc)) from exc
    value_keys = [name for name in table.header if name != "time"]
    if "time" not in table.header or not value_keys:
        raise decode_error(function, "missing_column", f"CSV header needs time and values: {list(table.header)[:12]}")
    result = NormalizeResult(function, rows_in=table.rows_in)
    for index, detail in table.ragged:
        result.reject("ragged_row", detail, index)
    times = string_column(table.columns["time"], table.rows)
    cells = {name: string_column(table.columns[name], table.rows) for name in value_keys}
    rows: list[_Row] = [
        (index, times[pos], {name: column[pos] for name, column in cells.items()})
        for pos, index in enumerate(table.row_ids)
    ]
    _series(function, symbol, interval, _parameters(function, params, {}), set(value_keys), rows, context, result)
    return result


def _parameters(function: str, params: Mapping[str, str], meta: Mapping[str, object]) -> dict[str, str | int | float]:
    """The indicator's parameters: request first, then Meta Data, then documented defaults."""
    from_meta = {_META_PARAMETERS[label]: value for label, value in meta.items() if label in _META_PARAMETERS}
    resolved: dict[str, str | int | float] = {}
    for name, default in INDICATORS[function][1].items():
        value = params.get(name, from_meta.get(name, default))
        if value is not None:
            resolved[name] = parse_parameter(value)
    return resolved


def _indicator_row(
    index: int, key: object, cells: Mapping[str, object], columns: list[str], result: NormalizeResult
) -> tuple[datetime, list[float | None]] | None:
    """One entry's time and values; ``None`` after rejecting it. Bad values are withheld and flagged."""
    try:
        stamp = parse_eastern_key(key)
    except ValueError as exc:
        result.reject("bad_timestamp", str(exc), index)
        return None
    values: list[float | None] = []
    bad: list[str] = []
    for name in columns:
        try:
            values.append(parse_number(cells.get(name)))
        except ValueError:
            values.append(None)
            bad.append(f"bad_{name}")
    if all(value is None for value in values):
        result.reject("no_values", f"entry {describe(key)} has no usable value", index)
        return None
    if bad:
        result.row_flags.append(RowFlag(index, stamp.isoformat(), tuple(bad)))
    return stamp, values


def _series(
    function: str,
    symbol: str,
    interval: str,
    parameters: dict[str, str | int | float],
    value_keys: set[str],
    rows: list[_Row],
    context: NormalizeContext,
    result: NormalizeResult,
) -> None:
    """Validate rows, order them oldest first and build the series."""
    known = INDICATORS[function][0]
    columns = [name for name in known if name in value_keys] + sorted(value_keys.difference(known))
    timed: list[tuple[datetime, int, list[float | None]]] = []
    for index, key, cells in rows:
        parsed = _indicator_row(index, key, cells, columns, result)
        if parsed is not None:
            timed.append((parsed[0], index, parsed[1]))
    ordered = in_time_order(timed, result)
    if result.rejected_rows:
        result.flag("partial")
    if not ordered:
        result.mark_empty("no_data")
        return
    timestamps = [stamp for stamp, _, _ in ordered]
    values_by_key = {name: [row[i] for _, _, row in ordered] for i, name in enumerate(columns)}
    newest = timestamps[-1]
    try:
        series = IndicatorSeries(
            **context.envelope(),
            record_id=stable_id(
                "alphavantage",
                function,
                symbol,
                interval,
                sorted(parameters.items()),
                newest.isoformat(),
                values_by_key,
            ),
            event_time=newest,
            symbol=symbol,
            function=function,
            interval=interval,
            parameters=parameters,
            timestamps=timestamps,
            values=values_by_key,
        )
    except ValidationError as exc:
        for _, index, _ in ordered:
            result.reject("invalid_record", f"{function} {symbol}: {exc.errors()[0]['msg']}", index)
        return
    if context.is_stale(function, newest):
        result.flag("stale")
    result.records.append(series)
    result.rows_out = len(ordered)

"""Property tests: the normalizer never fails but with RecordDecodeError, and never loses a valid row."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quanticity.data_ingestion import av_csv, av_values, option_chain_arrow
from quanticity.data_ingestion.normalize_contract import NormalizeResult
from quanticity.data_ingestion.normalize_options import normalize_options_csv
from quanticity.data_ingestion.normalizer import SUPPORTED_FUNCTIONS, normalize
from quanticity.data_ingestion.option_chain_rows import ChainGroup, group_rows_python
from quanticity.errors import RecordDecodeError
from quanticity.schemas import Bar, MacroSeries, OptionChainSnapshot
from quanticity.schemas.columns import column_list, float_column
from tests.unit.data_ingestion.test_normalizer_builders import (
    OPTION_FIELDS,
    context,
    intraday_json,
    option_rows,
    options_csv,
    options_json,
    payload,
)

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", ".", "-", "None", "1.5", "2024-01-02", "call", "IBM"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FAMILIES = [
    "REALTIME_OPTIONS",
    "HISTORICAL_OPTIONS",
    "TIME_SERIES_INTRADAY",
    "GLOBAL_QUOTE",
    "MACD",
    "WILLR",
    "TREASURY_YIELD",
    "CPI",
    "NEWS_SENTIMENT",
]


def _outcome(function: str, body: Any, params: dict[str, str] | None = None) -> NormalizeResult | RecordDecodeError:
    """Normalize; return the result or the RecordDecodeError (anything else propagates and fails the test)."""
    try:
        result = normalize(function, params or {"symbol": "SPY", "interval": "1min"}, body, context=context())
    except RecordDecodeError as exc:
        assert exc.reason != "normalizer_bug", exc.detail
        assert exc.topic == "alphavantage" and exc.detail.startswith(function)
        return exc
    assert result.rows_in == result.rows_out + len(result.rejected_rows)
    return result


@PROPERTY
@given(function=st.sampled_from(FAMILIES), document=json_values)
def test_arbitrary_json_never_raises_anything_else(function: str, document: Any) -> None:
    """Any JSON tree, as bytes or as a decoded object, is a result or a RecordDecodeError."""
    _outcome(function, orjson.dumps(document))
    if isinstance(document, dict):
        _outcome(function, document)


@PROPERTY
@given(function=st.sampled_from(FAMILIES), body=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(function: str, body: bytes) -> None:
    """Random bytes (sniffed as CSV unless they start like JSON or HTML) never escape as another error."""
    _outcome(function, body)


@PROPERTY
@given(function=st.sampled_from(FAMILIES), text=st.text(max_size=300))
def test_csv_like_text_never_raises_anything_else(function: str, text: str) -> None:
    """Text with a plausible header and random rows never escapes as another error."""
    header = "timestamp,open,high,low,close,volume,time,MACD,value,symbol,price,latestDay,"
    _outcome(function, (header + ",".join(OPTION_FIELDS) + "\n" + text).encode())


def _valid_payloads() -> dict[str, bytes]:
    bars = {f"2024-06-03 10:{m:02d}:00": ("10.0", "10.5", "9.5", "10.2", "100") for m in range(6)}
    return {
        "REALTIME_OPTIONS": options_json(option_rows(12)),
        "HISTORICAL_OPTIONS": payload("historical_options_ibm.json"),
        "TIME_SERIES_INTRADAY": intraday_json("SPY", "1min", bars),
        "GLOBAL_QUOTE": payload("global_quote_ibm.json"),
        "WILLR": payload("willr_msft_daily.json"),
        "TREASURY_YIELD": payload("treasury_yield_monthly.json"),
        "NEWS_SENTIMENT": payload("news_sentiment.json"),
    }


VALID = _valid_payloads()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, value)}
    copy = list(node)
    copy[head] = _replace(copy[head], rest, value)
    return copy


@PROPERTY
@given(function=st.sampled_from(sorted(VALID)), data=st.data())
def test_valid_payloads_with_mutated_fields_never_raise_anything_else(function: str, data: st.DataObject) -> None:
    """Replace up to three fields anywhere in a valid reply with random JSON: still a result or a decode error."""
    document = orjson.loads(VALID[function])
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(document)))
        document = _replace(document, path, data.draw(json_values))
    _outcome(function, orjson.dumps(document))


# ------------------------------------------------------------------ no valid row is lost

_UNUSABLE = {
    "strike": st.sampled_from(["x", "-1", "", "nan", "1e999", "0"]),
    "type": st.sampled_from(["", "straddle", "C ", "None"]),
    "expiration": st.sampled_from(["", "2026-13-01", "tomorrow", "2026-02-27"]),
    "symbol": st.sampled_from(["", "spy", "TOO-LONG-SYMBOL-NAME", "S P Y"]),
}
_DOUBTFUL = {
    "bid": st.sampled_from(["-1.00", "abc", "", "1e999"]),
    "ask": st.sampled_from(["0.00", "-", "x"]),
    "implied_volatility": st.sampled_from(["0", "-0.2", "7.5", "nan", "bad"]),
    "delta": st.sampled_from(["1.5", "-1.5", "-0.30000", "0.30000"]),
    "gamma": st.sampled_from(["-0.001", "abc"]),
    "vega": st.sampled_from(["-0.01"]),
    "date": st.sampled_from(["", "2026-03-99", "x"]),
    "volume": st.sampled_from(["-5", "1_000", " 12"]),
}


@st.composite
def corrupted_chains(draw: st.DrawFn) -> tuple[list[dict[str, str]], set[int]]:
    """A chain with some rows made unusable and others made doubtful; returns the rows and the unusable indices."""
    rows = option_rows(draw(st.integers(2, 120)), seed=draw(st.integers(0, 5)))
    broken: set[int] = set()
    for index in draw(st.lists(st.integers(0, len(rows) - 1), max_size=12, unique=True)):
        field = draw(st.sampled_from(sorted(_UNUSABLE)))
        rows[index] = {**rows[index], field: draw(_UNUSABLE[field])}
        broken.add(index)
    for index in draw(st.lists(st.integers(0, len(rows) - 1), max_size=20, unique=True)):
        if index in broken:
            continue  # a doubtful date could un-expire a row broken as "expired"
        field = draw(st.sampled_from(sorted(_DOUBTFUL)))
        rows[index] = {**rows[index], field: draw(_DOUBTFUL[field])}
    return rows, broken


def _contracts(result: NormalizeResult) -> set[tuple[str, float, str]]:
    return {
        (str(snapshot.expiry), strike, right)
        for snapshot in result.records
        if isinstance(snapshot, OptionChainSnapshot)
        for strike, right in zip(snapshot.strike, snapshot.right, strict=True)
    }


@PROPERTY
@given(chain=corrupted_chains(), as_csv=st.booleans())
def test_corrupted_chain_keeps_every_valid_row(chain: tuple[list[dict[str, str]], set[int]], as_csv: bool) -> None:
    """Rows untouched by an unusable edit all come out; rows in == rows out + rejected."""
    rows, broken = chain
    body = options_csv(rows) if as_csv else options_json(rows)
    result = normalize("REALTIME_OPTIONS", {"symbol": "SPY"}, body, context=context())

    expected = {
        (row["expiration"], float(row["strike"]), row["type"][0].upper())
        for index, row in enumerate(rows)
        if index not in broken
    }
    assert expected <= _contracts(result)
    assert result.rows_out == len(rows) - len(broken)
    assert result.rows_in == len(rows) == result.rows_out + len(result.rejected_rows)
    assert {r.row_index for r in result.rejected_rows} == broken


@PROPERTY
@given(chain=corrupted_chains(), repeats=st.lists(st.integers(0, 200), max_size=5))
def test_vectorised_and_python_passes_agree(chain: tuple[list[dict[str, str]], set[int]], repeats: list[int]) -> None:
    """The pyarrow pass and the pure-Python pass give identical groups, rejections and flags."""
    rows, _ = chain
    rows = rows + [rows[i % len(rows)] for i in repeats]  # repeated contracts too
    columns = {name: [row.get(name) for row in rows] for name in OPTION_FIELDS}
    table = av_csv.read_csv_columns(options_csv(rows))
    fast, slow = NormalizeResult("X", rows_in=len(rows)), NormalizeResult("X", rows_in=len(rows))
    fast_groups = option_chain_arrow.group_rows_arrow(table.columns, table.row_ids, 3.0, fast)
    slow_groups = group_rows_python(columns, list(range(len(rows))), 3.0, slow)

    assert fast_groups is not None
    assert [_as_lists(g) for g in fast_groups] == [_as_lists(g) for g in slow_groups]
    assert (fast.rejected_rows, fast.row_flags) == (slow.rejected_rows, slow.row_flags)


def _as_lists(group: ChainGroup) -> ChainGroup:
    """A group with its number columns as lists (None for absent): the two passes' common form."""
    columns = {
        name: column_list(float_column(values)) if name in _FLOAT_COLUMNS else values
        for name, values in group.columns.items()
    }
    return dataclasses.replace(group, columns=columns)


@PROPERTY
@given(chain=corrupted_chains())
def test_typed_and_text_csv_readers_agree(chain: tuple[list[dict[str, str]], set[int]]) -> None:
    """Reading numbers while parsing the CSV gives the same result as reading text and parsing cells."""
    rows, _ = chain
    body = options_csv(rows)
    ctx = context()
    typed = normalize_options_csv("REALTIME_OPTIONS", {"symbol": "SPY"}, body, ctx)
    text = normalize_options_csv("REALTIME_OPTIONS", {"symbol": "SPY"}, body, ctx, typed=False)

    assert typed.records == text.records
    assert (typed.rejected_rows, typed.row_flags, typed.flags) == (text.rejected_rows, text.row_flags, text.flags)


_FLOAT_COLUMNS = (
    "strike", "bid", "ask", "last", "mark", "bid_size", "ask_size", "volume", "open_interest",
    "implied_vol", "delta", "gamma", "theta", "vega", "rho",
)  # fmt: skip


def test_clean_csv_takes_the_typed_reader() -> None:
    """The typed reader is used on a clean chain (so the agreement above is not vacuous), not on a doubtful one."""
    rows = option_rows(50)
    assert option_chain_arrow.read_typed_csv(options_csv(rows)) is not None
    assert option_chain_arrow.read_typed_csv(options_csv([{**row, "rho": ""} for row in rows])) is not None
    assert option_chain_arrow.read_typed_csv(options_csv([{**rows[0], "bid": "abc"}, *rows[1:]])) is None
    assert option_chain_arrow.read_typed_csv(options_csv([{**rows[0], "bid": " 1.5"}, *rows[1:]])) is None
    assert option_chain_arrow.read_typed_csv(options_csv([{**rows[0], "bid": "nan"}, *rows[1:]])) is None


@PROPERTY
@given(chain=corrupted_chains(), as_csv=st.booleans())
def test_snapshots_validate_unchanged(chain: tuple[list[dict[str, str]], set[int]], as_csv: bool) -> None:
    """Snapshots built from typed columns (no per-cell validation) are exactly what full validation accepts."""
    rows, _ = chain
    body = options_csv(rows) if as_csv else options_json(rows)
    for snapshot in normalize("REALTIME_OPTIONS", {"symbol": "SPY"}, body, context=context()).records:
        assert isinstance(snapshot, OptionChainSnapshot)
        assert OptionChainSnapshot.model_validate(snapshot.model_dump()) == snapshot
        assert OptionChainSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot
        for name in _FLOAT_COLUMNS:
            column = getattr(snapshot, name)
            assert isinstance(column, np.ndarray) and column.dtype == np.float64 and not column.flags.writeable, name
        assert {type(cell) for cell in (*snapshot.right, *snapshot.contract_id)} <= {str, type(None)}


def _keep_valid_rows(
    function: str,
    build: Callable[[list[Any]], bytes],
    good: list[Any],
    bad: list[Any],
    count: Callable[[NormalizeResult], int],
) -> None:
    result = normalize(function, {"symbol": "SPY", "interval": "1min"}, build(good + bad), context=context())
    assert count(result) == len(good)
    assert result.rows_in == len(good) + len(bad) == result.rows_out + len(result.rejected_rows)


@PROPERTY
@given(
    minutes=st.lists(st.integers(0, 500), min_size=1, max_size=40, unique=True),
    junk=st.lists(
        st.sampled_from(
            [("x", "1", "1", "1", "1"), ("1", "1", "1", "1"), ("5", "1", "9", "5", "1"), ("1", "2", "0.5", "1", "None")]
        ),
        max_size=6,
    ),
)
def test_intraday_with_corrupt_bars_keeps_every_valid_bar(minutes: list[int], junk: list[tuple[str, ...]]) -> None:
    """Bars with garbage, too few fields or an impossible range are rejected; every good bar survives."""
    good = [(f"2024-06-03 {9 + m // 60:02d}:{m % 60:02d}:00", ("10", "11", "9", "10.5", "7")) for m in minutes]
    bad = [(f"2024-06-04 10:{i:02d}:00", cells) for i, cells in enumerate(junk)]

    def build(bars: list[Any]) -> bytes:
        series = {
            key: dict(zip(("1. open", "2. high", "3. low", "4. close", "5. volume"), cells, strict=False))
            for key, cells in bars
        }
        return orjson.dumps({"Meta Data": {"2. Symbol": "SPY", "4. Interval": "1min"}, "Time Series (1min)": series})

    _keep_valid_rows("TIME_SERIES_INTRADAY", build, good, bad, lambda r: sum(isinstance(x, Bar) for x in r.records))


@PROPERTY
@given(
    months=st.lists(st.integers(0, 300), min_size=1, max_size=40, unique=True),
    junk=st.lists(st.sampled_from([("2024-02-30", "1"), ("x", "1"), ("2030-01-01", "abc"), (None, "2")]), max_size=6),
)
def test_macro_with_corrupt_rows_keeps_every_valid_observation(months: list[int], junk: list[Any]) -> None:
    """Bad dates and values are rejected; "." gaps and good rows all survive."""
    good = [(f"{1990 + m // 12}-{m % 12 + 1:02d}-01", "." if m % 7 == 0 else f"{m}.5") for m in months]

    def build(rows: list[Any]) -> bytes:
        return orjson.dumps(
            {"name": "CPI", "interval": "monthly", "unit": "index", "data": [{"date": d, "value": v} for d, v in rows]}
        )

    _keep_valid_rows(
        "CPI", build, good, list(junk), lambda r: sum(len(x.dates) for x in r.records if isinstance(x, MacroSeries))
    )


# ------------------------------------------------------------------ value parsing

plain_numbers = st.from_regex(r"\A[+-]?(?:[0-9]{1,20}\.?[0-9]{0,20}|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,3})?\Z")


@settings(max_examples=400, deadline=None)
@given(text=plain_numbers)
def test_number_grammar_is_decimal_exact(text: str) -> None:
    """Within the accepted grammar, float(text) is float(Decimal(text)): no precision is lost by skipping Decimal."""
    expected = float(Decimal(text))
    if math.isfinite(expected):
        assert av_values.parse_number(text) == expected
    else:
        with pytest.raises(ValueError):
            av_values.parse_number(text)


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(
        st.one_of(plain_numbers, st.text(max_size=8), st.sampled_from(["nan", "inf", ".", "-", "None"])), max_size=30
    )
)
def test_vectorised_and_scalar_number_parsers_agree(cells: list[str]) -> None:
    """pyarrow's cast path and the scalar grammar give the same values and the same bad cells."""
    vectorised = av_values.parse_number_column(cells, len(cells))
    scalar = av_values._scalar_numbers(cells)
    assert vectorised.values == scalar.values
    assert set(vectorised.bad) <= set(scalar.bad)
    assert [i for i, v in enumerate(scalar.values) if v is None and i not in scalar.bad] == [
        i for i, v in enumerate(vectorised.values) if v is None and i not in scalar.bad
    ]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.text(max_size=6), min_size=3, max_size=3), max_size=10))
def test_arrow_and_stdlib_csv_readers_agree(rows: list[list[str]]) -> None:
    """Whatever the cells (quotes, commas, newlines), both readers see the same rows."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([["a", "b", "c"], *rows])
    body = buffer.getvalue().encode()
    fast, slow = av_csv.read_csv_columns(body), av_csv.read_csv_columns(body, prefer_arrow=False)

    assert (fast.header, fast.row_ids, fast.ragged) == (slow.header, slow.row_ids, slow.ragged)
    assert {k: av_values.string_column(v, fast.rows) for k, v in fast.columns.items()} == slow.columns


def test_every_supported_function_is_exercised_by_some_test() -> None:
    """The property tests sample one function of each family; the families cover every supported function."""
    assert {
        "REALTIME_OPTIONS",
        "HISTORICAL_OPTIONS",
        "TIME_SERIES_INTRADAY",
        "GLOBAL_QUOTE",
        "NEWS_SENTIMENT",
    } <= SUPPORTED_FUNCTIONS
    assert len(SUPPORTED_FUNCTIONS) == 2 + 1 + 1 + 19 + 10 + 1

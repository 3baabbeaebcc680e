"""The vectorised pass over an option chain (pyarrow), for the 12-second SPY-size hot path.

A per-row Python pass costs ~50 ms for 10k contracts on the development machine; this
one costs a few. It evaluates, column-wise, a predicate that holds only for rows on which
``ChainRows`` would find nothing to reject or flag. Every other row is handed to
``ChainRows`` itself, so the outcome of a doubtful row is decided by one piece of code.
Sorting, de-duplication and grouping then run on Arrow arrays; the number columns leave
as float64 numpy arrays (the snapshot's own column type) and only ``right`` and the
contract ids become Python lists.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np

from quanticity.data_ingestion.av_csv import CsvColumns
from quanticity.data_ingestion.av_values import MISSING_MARKERS, Column, NumberColumn, parse_number_array
from quanticity.data_ingestion.normalize_contract import NormalizeResult, RowFlag
from quanticity.data_ingestion.option_chain_rows import (
    GREEK_SCALE,
    GREEKS,
    NUMBERS,
    OUR_NAME,
    PRICES,
    RIGHTS,
    SYMBOL,
    TEXT,
    ChainGroup,
    ChainRows,
    cached_date_parser,
    contract_label,
    duplicate_detail,
)

try:
    pa: Any = importlib.import_module("pyarrow")
    pc: Any = importlib.import_module("pyarrow.compute")
    pacsv: Any = importlib.import_module("pyarrow.csv")
except ImportError:  # pragma: no cover - exercised only where pyarrow is absent
    pa = None
    pc = None
    pacsv = None

_CALLS = [key for key, right in RIGHTS.items() if right == "C"]


def available() -> bool:
    """Whether pyarrow is installed."""
    return pa is not None


# Cells that make the typed read below unsafe: Arrow trims spaces around numbers (the
# grammar does not), and quoting is left to the general reader.
_UNTYPED_MARKS = (b'"', b" ", b"\t")


def read_typed_csv(body: bytes) -> CsvColumns | None:
    """An options CSV body read with its number columns parsed by the CSV reader itself.

    Parsing numbers while reading saves the text columns and the casts (~3 ms on a 10k
    chain). It is only a shortcut: it gives up (``None``) unless every number cell is a
    plain finite number or a gap marker, and then ``av_csv.read_csv_columns`` reads the body
    as text and the usual rules judge each cell, so both ways give the same records.
    """
    if pacsv is None:
        return None
    body = body.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    if any(mark in body for mark in _UNTYPED_MARKS):
        return None
    end = body.find(b"\n")
    first_line = body if end < 0 else body[:end]
    try:
        header = tuple(name.strip() for name in first_line.rstrip(b"\r").decode().split(","))
    except UnicodeDecodeError:
        return None
    if "" in header or len(set(header)) != len(header):
        return None
    numbers = set(NUMBERS)
    # Two blocks of about half the body: the reader parses them on two threads (~10% faster
    # than its default 1 MB blocks on a full SPY chain on two cores).
    block_size = max(len(body) // 2 + 1, 1 << 16)
    read_options = pacsv.ReadOptions(column_names=list(header), skip_rows=1, block_size=block_size)
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.float64() if name in numbers else pa.string() for name in header},
        null_values=sorted(MISSING_MARKERS),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(pa.BufferReader(body), read_options=read_options, convert_options=convert_options)
    except (pa.ArrowException, ValueError):
        return None
    columns = {name: table.column(i).combine_chunks() for i, name in enumerate(header)}
    for name in numbers.intersection(header):
        # "nan", "inf", "1e999": the grammar refuses them (a column of gaps only is fine: min_count=0)
        if not pc.all(pc.is_finite(columns[name]), min_count=0).as_py():
            return None
    return CsvColumns(header, columns, list(range(table.num_rows)))


def _number_array(column: Column | None, rows: int) -> tuple[Any, dict[int, str]]:
    """A number column as float64 (null = gap) and its bad cells; ``read_typed_csv`` columns are parsed already."""
    if isinstance(column, pa.Array) and column.type == pa.float64():
        return column, {}
    return parse_number_array(column, rows)


def group_rows_arrow(
    columns: Mapping[str, Column], row_ids: Sequence[int], max_iv: float, result: NormalizeResult
) -> list[ChainGroup] | None:
    """The same outcome as ``group_rows_python``, vectorised.

    Returns:
        The groups, or ``None`` (with ``result`` untouched) when a column holds cells that
        are not text (a mutated JSON reply): the Python pass handles those.
    """
    rows = len(row_ids)
    text = _text_arrays(columns, rows)
    if text is None or rows == 0:
        return None
    parsed = {name: _number_array(columns.get(name), rows) for name in NUMBERS}
    numbers = {name: array for name, (array, _) in parsed.items()}
    bad = {name: cells for name, (_, cells) in parsed.items() if cells}
    expiry, expiry_ok = _dates(text["expiration"])
    day, _ = _dates(text["date"])
    day_absent = pc.or_(pc.is_null(text["date"]), pc.is_in(text["date"], value_set=pa.array(sorted(MISSING_MARKERS))))
    is_call = pc.is_in(text["type"], value_set=pa.array(_CALLS))
    clean = _clean(text, numbers, expiry_ok, expiry, day, day_absent, is_call, max_iv)
    doubtful = sorted(set(pc.indices_nonzero(pc.invert(clean)).to_pylist()).union(*bad.values()))
    outcome = _doubtful_rows(doubtful, text, numbers, bad, row_ids, max_iv, result)
    usable = _mask(rows, outcome.usable, base=clean)
    for name in PRICES:
        if outcome.nulled[name]:
            numbers[name] = pc.if_else(_mask(rows, outcome.nulled[name]), pa.scalar(None, pa.float64()), numbers[name])
    junk = _mask(rows, outcome.junk) if outcome.junk else None
    table = pa.table(
        {
            "symbol": text["symbol"],
            "expiry": expiry,
            "strike": numbers["strike"],
            "right": pc.if_else(is_call, "C", "P"),
            "row_id": pa.array(row_ids, type=pa.int64()),
            "contract": text["contractID"],
            "junk": junk if junk is not None else pa.array(np.zeros(rows, dtype=bool)),
            "day": day,
            **{name: numbers[name] for name in PRICES},
            **{OUR_NAME.get(name, name): _scaled(numbers[name], GREEK_SCALE[name], junk) for name in GREEKS},
        }
    )
    if not pc.all(usable).as_py():
        table = table.filter(usable)
    keys = ("symbol", "expiry", "strike", "right", "row_id")
    if not _is_sorted(table, keys):  # AlphaVantage already sends expiry, strike, call-then-put order
        table = table.take(pc.sort_indices(table, sort_keys=[(key, "ascending") for key in keys]))
    repeat = _same_as_previous(table, ("symbol", "expiry", "strike", "right"))
    if not pc.any(repeat).as_py():
        return _groups(table, outcome.damaged)
    repeats = _reject_repeats(table.filter(repeat), result)
    return _groups(table.filter(pc.invert(repeat)), repeats | outcome.damaged)


class _Doubtful:
    """What ``ChainRows`` decided about the rows the predicate could not clear."""

    __slots__ = ("usable", "nulled", "junk", "damaged")

    def __init__(self) -> None:
        self.usable: list[int] = []
        self.nulled: dict[str, list[int]] = {name: [] for name in PRICES}
        self.junk: list[int] = []
        self.damaged: set[tuple[str, date]] = set()


def _doubtful_rows(
    positions: list[int],
    text: Mapping[str, Any],
    numbers: Mapping[str, Any],
    bad: Mapping[str, dict[int, str]],
    row_ids: Sequence[int],
    max_iv: float,
    result: NormalizeResult,
) -> _Doubtful:
    """Run ``ChainRows`` on just these rows; record rejections and flags in payload order."""
    outcome = _Doubtful()
    if not positions:
        return outcome
    index = pa.array(positions, type=pa.int64())
    local = {pos: i for i, pos in enumerate(positions)}
    sub_text: dict[str, list[object]] = {name: text[name].take(index).to_pylist() for name in TEXT}
    sub_numbers = {
        name: NumberColumn(
            numbers[name].take(index).to_pylist(),
            {local[pos]: cell for pos, cell in bad.get(name, {}).items() if pos in local},
        )
        for name in NUMBERS
    }
    chain = ChainRows(sub_text, sub_numbers, max_iv)
    for i, pos in enumerate(positions):
        identity = chain.identify(i)
        if len(identity) == 3:
            reason, detail, group = identity
            result.reject(reason, detail, row_ids[pos])
            if group is not None:
                outcome.damaged.add(group)
            continue
        symbol, expiry = identity
        flags = chain.flags(i)
        if flags:
            result.row_flags.append(RowFlag(row_ids[pos], chain.label(i, symbol, expiry), tuple(flags)))
        if not chain.greeks_ok[i]:
            outcome.junk.append(pos)
        outcome.usable.append(pos)
    for name, nulled in chain.nulled.items():
        outcome.nulled[name] = [positions[i] for i in nulled]
    return outcome


def _text_arrays(columns: Mapping[str, Column], rows: int) -> dict[str, Any] | None:
    arrays: dict[str, Any] = {}
    for name in TEXT:
        column = columns.get(name)
        try:
            if column is None:
                arrays[name] = pa.nulls(rows, pa.string())
            elif isinstance(column, pa.Array):
                arrays[name] = column
            else:
                arrays[name] = pa.array(column, type=pa.string())
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
    return arrays


def _dates(cells: Any) -> tuple[Any, Any]:
    """A date32 array (null where the cell is not a date) and its validity mask."""
    day_of = cached_date_parser()
    distinct = [cell for cell in pc.unique(cells).to_pylist() if day_of(cell) is not None]
    index = pc.index_in(cells, value_set=pa.array(distinct, type=pa.string()))
    dates = pa.array([day_of(cell) for cell in distinct], type=pa.date32()).take(index)
    return dates, pc.is_valid(index)


def _clean(
    text: Mapping[str, Any],
    numbers: Mapping[str, Any],
    expiry_ok: Any,
    expiry: Any,
    day: Any,
    day_absent: Any,
    is_call: Any,
    max_iv: float,
) -> Any:
    """Rows on which ``ChainRows`` would find nothing to reject or flag."""
    symbols = [s for s in pc.unique(text["symbol"]).to_pylist() if isinstance(s, str) and SYMBOL.fullmatch(s)]
    iv, delta = numbers["implied_volatility"], numbers["delta"]
    # What a row must have: a null here (an absent cell) disqualifies it.
    required = [
        pc.is_in(text["symbol"], value_set=pa.array(symbols, type=pa.string())),
        pc.is_in(text["type"], value_set=pa.array(list(RIGHTS))),
        expiry_ok,
        pc.greater(numbers["strike"], 0.0),
    ]
    # What a row's values must satisfy when present: a null here (absent value) is fine.
    when_present = [
        pc.or_(pc.is_valid(day), day_absent),
        pc.invert(pc.less(expiry, day)),
        pc.invert(pc.greater(numbers["bid"], numbers["ask"])),
        *(pc.greater_equal(numbers[name], 0.0) for name in PRICES),
        pc.and_(pc.greater(iv, 0.0), pc.less_equal(iv, max_iv)),
        pc.less_equal(pc.abs(delta), 1.0),
        pc.if_else(is_call, pc.greater_equal(delta, 0.0), pc.less_equal(delta, 0.0)),
        pc.greater_equal(numbers["gamma"], 0.0),
        pc.greater_equal(numbers["vega"], 0.0),
    ]
    clean = pc.fill_null(required[0], False)
    for check in required[1:]:
        clean = pc.and_(clean, pc.fill_null(check, False))
    for check in when_present:
        clean = pc.and_(clean, pc.fill_null(check, True))
    return clean


def _mask(rows: int, positions: Sequence[int], base: Any = None) -> Any:
    """A boolean array true at ``positions`` (or-ed with ``base``)."""
    flags = np.zeros(rows, dtype=bool)
    flags[np.asarray(positions, dtype=np.int64)] = True
    mask = pa.array(flags)
    return mask if base is None else pc.or_(base, mask)


def _scaled(values: Any, factor: float, junk: Any) -> Any:
    if junk is not None:
        values = pc.if_else(junk, pa.scalar(None, pa.float64()), values)
    return values if factor == 1.0 else pc.multiply(values, factor)


def _same_as_previous(table: Any, keys: Sequence[str]) -> Any:
    """True where a row's ``keys`` equal the previous row's (the first row is false)."""
    rows = table.num_rows
    same = pa.array([rows > 0] * max(rows - 1, 0), type=pa.bool_())
    for key in keys:
        column = table.column(key).combine_chunks()
        same = pc.and_(same, pc.equal(column.slice(1), column.slice(0, max(rows - 1, 0))))
    return pa.concat_arrays([pa.array([False] * min(rows, 1), type=pa.bool_()), same])


def _reject_repeats(repeats: Any, result: NormalizeResult) -> set[tuple[str, date]]:
    """Reject repeated contracts (in sorted order, as the Python pass does); their groups."""
    damaged: set[tuple[str, date]] = set()
    for row in repeats.select(["contract", "symbol", "expiry", "strike", "right", "row_id"]).to_pylist():
        name = contract_label(row["contract"], row["symbol"], row["expiry"], row["strike"], row["right"])
        result.reject(
            "duplicate_contract", duplicate_detail(name, row["symbol"], row["expiry"], row["strike"]), row["row_id"]
        )
        damaged.add((row["symbol"], row["expiry"]))
    return damaged


def _is_sorted(table: Any, keys: Sequence[str]) -> bool:
    """Whether the rows are already in ascending lexicographic order of ``keys`` (no nulls there)."""
    rows = table.num_rows
    if rows < 2:
        return True
    ordered = None
    for key in reversed(keys):
        column = table.column(key).combine_chunks()
        before, after = column.slice(0, rows - 1), column.slice(1)
        less = pc.less(before, after)
        ordered = less if ordered is None else pc.or_(less, pc.and_(pc.equal(before, after), ordered))
    return bool(pc.all(ordered).as_py())


def _frozen(column: Any) -> Any:
    """A float64 Arrow column as a read-only numpy array (null → NaN): snapshots take slices of it as they are."""
    array = column.to_numpy(zero_copy_only=False)
    array.flags.writeable = False
    return array


def _groups(table: Any, partial: set[tuple[str, date]]) -> list[ChainGroup]:
    """Split the sorted, de-duplicated rows into one group per (symbol, expiry).

    Per-group facts (newest date, stale rows, junk) are computed for all groups at once.
    """
    rows = table.num_rows
    if rows == 0:
        return []
    starts = pc.indices_nonzero(pc.invert(_same_as_previous(table, ("symbol", "expiry")))).to_numpy().astype(np.intp)
    ends = np.append(starts[1:], rows)
    junk = np.add.reduceat(table.column("junk").to_numpy(zero_copy_only=False).astype(np.int8), starts) > 0
    days = table.column("day").to_numpy().astype("datetime64[D]")  # NaT where the row had no date
    dated = ~np.isnat(days)
    day_number = np.where(dated, days.astype(np.int64), np.iinfo(np.int64).min)
    newest = np.maximum.reduceat(day_number, starts)  # int64 min: no row of the group had a date
    has_newest = newest != np.iinfo(np.int64).min
    stale = dated & (day_number < np.repeat(newest, ends - starts))
    any_stale = np.add.reduceat(stale.astype(np.int8), starts) > 0
    newest_days = newest.astype("datetime64[D]").astype(object)
    numbers = ["strike", *PRICES, *(OUR_NAME.get(name, name) for name in GREEKS)]
    # Number columns stay float64 arrays (null → NaN) all the way to the snapshot.
    values: dict[str, Any] = {name: _frozen(table.column(name).combine_chunks()) for name in numbers}
    values["right"] = table.column("right").to_pylist()
    values["contract_id"] = table.column("contract").to_pylist()
    row_ids = table.column("row_id").to_numpy().tolist()
    index = pa.array(starts)
    symbols = table.column("symbol").take(index).to_pylist()
    expiries = table.column("expiry").take(index).to_pylist()
    groups: list[ChainGroup] = []
    for g, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        symbol, expiry = symbols[g], expiries[g]
        groups.append(
            ChainGroup(
                symbol=symbol,
                expiry=expiry,
                columns={name: column[start:end] for name, column in values.items()},
                row_ids=row_ids[start:end],
                newest_day=newest_days[g] if has_newest[g] else None,
                partial=(symbol, expiry) in partial,
                junk=bool(junk[g]),
                stale_rows=np.flatnonzero(stale[start:end]).tolist() if any_stale[g] else [],
            )
        )
    return groups

"""AlphaVantage value strings: numbers, gap markers, dates and US/Eastern timestamps.

AlphaVantage sends almost every number as a JSON string (``"121.7400"``), marks gaps with
``"."`` (macro, the FRED marker) or ``"None"``/``"-"``/``""``, and stamps intraday data in
naive US/Eastern wall-clock time. Everything here is pure and total: a value either parses
or raises ``ValueError`` naming what it saw; callers turn that into a rejected row or flag.

Numbers: a cell is accepted only if it matches a plain decimal grammar (ASCII digits,
optional sign, fraction and exponent) and is finite. Within that grammar ``float(text)``
is exactly ``float(Decimal(text))``: CPython's string-to-float is correctly rounded, as is
the Decimal-to-float conversion, so both give the nearest double. The grammar is the
Decimal-safety (no ``nan``, ``inf``, ``1_000``, Unicode digits or padding slips through),
and skipping the Decimal object keeps a 10k-contract chain cheap. A property test checks
the equality and that the vectorised (pyarrow) and scalar parsers agree on any text.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

# pyarrow is optional (the pure-Python path gives the same values, only slower) and ships
# no type information; importlib hands it to us as Any instead of an untyped import.
try:
    pa: Any = importlib.import_module("pyarrow")
    pc: Any = importlib.import_module("pyarrow.compute")
except ImportError:  # pragma: no cover - exercised only where pyarrow is absent
    pa = None
    pc = None

EASTERN = ZoneInfo("America/New_York")

# "." is FRED's missing-observation marker (macro); the others are what AlphaVantage and
# its CSV writers put in empty cells.
MISSING_MARKERS = frozenset({"", ".", "-", "None"})

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")
_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})?")

# US equity and equity-option regular sessions close at 16:00 New York time; a daily value
# (a quote's "latest trading day", an option snapshot's date, a daily indicator) is known
# only from then on. Half-days close earlier, which only makes such a value look fresher.
SESSION_CLOSE = time(16, 0)

# Column is a list of raw cells (from JSON) or a pyarrow string array (from CSV).
Column = Sequence[object] | Any


def describe(value: object, limit: int = 40) -> str:
    """A short, safe rendering of a bad cell for a rejection detail."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_number(value: object) -> float | None:
    """One AlphaVantage number cell as a float, or ``None`` for a gap.

    Args:
        value: a string cell, a JSON number, or ``None``.

    Returns:
        The value, or ``None`` when the cell is absent or a gap marker.

    Raises:
        ValueError: the cell is not a finite plain decimal number.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value in MISSING_MARKERS:
            return None
        if _NUMBER.fullmatch(value) is None:
            raise ValueError(f"not a number: {describe(value)}")
        number = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError as exc:
            raise ValueError(f"number out of range: {describe(value)}") from exc
    else:
        raise ValueError(f"not a number: {describe(value)}")
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {describe(value)}")
    return number


@dataclass(frozen=True, slots=True)
class NumberColumn:
    """A parsed numeric column: values aligned with the input, and the cells that failed.

    Attributes:
        values: one float or ``None`` per input cell (``None`` for gaps and for bad cells).
        bad: position → rendering of each cell that was present but not a number.
    """

    values: list[float | None]
    bad: dict[int, str] = field(default_factory=dict)


def parse_number_column(column: Column | None, rows: int) -> NumberColumn:
    """Parse a whole column of number cells into a list.

    Uses pyarrow's vectorised cast when the column is clean (the common case) and falls
    back to ``parse_number`` cell by cell to find and name the bad cells otherwise.

    Args:
        column: the raw cells, or ``None`` when the payload has no such column.
        rows: the number of rows, used when the column is absent.

    Returns:
        The parsed column.
    """
    if column is None:
        return NumberColumn([None] * rows)
    fast = _arrow_numbers(column)
    if fast is not None:
        return NumberColumn(fast.to_pylist())
    return _scalar_numbers(column)


def parse_number_array(column: Column | None, rows: int) -> tuple[Any, dict[int, str]]:
    """Parse a whole column of number cells into a pyarrow float64 array.

    Args:
        column: the raw cells, or ``None`` when the payload has no such column.
        rows: the number of rows, used when the column is absent.

    Returns:
        The array (null for gaps and bad cells) and position → rendering of each bad cell.
    """
    if column is None:
        return pa.nulls(rows, pa.float64()), {}
    fast = _arrow_numbers(column)
    if fast is not None:
        return fast, {}
    parsed = _scalar_numbers(column)
    return pa.array(parsed.values, type=pa.float64()), parsed.bad


def _scalar_numbers(column: Column) -> NumberColumn:
    cells = column.to_pylist() if pa is not None and isinstance(column, pa.Array) else column
    values: list[float | None] = []
    bad: dict[int, str] = {}
    for position, cell in enumerate(cells):
        try:
            values.append(parse_number(cell))
        except ValueError:
            values.append(None)
            bad[position] = describe(cell)
    return NumberColumn(values, bad)


def _arrow_numbers(column: Column) -> Any:
    """The vectorised parse as a float64 array, or ``None`` when some cell needs the scalar path."""
    if pa is None:
        return None
    try:
        strings = column if isinstance(column, pa.Array) else pa.array(column, type=pa.string())
        if strings.type != pa.string():
            return None
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None  # mixed cell types (JSON numbers, objects): let the scalar path name them
    try:
        floats = strings.cast(pa.float64())
    except pa.ArrowInvalid:
        # Gap markers are not numbers to Arrow; null them and try once more.
        markers = pa.array(sorted(MISSING_MARKERS), type=pa.string())
        masked = pc.if_else(pc.is_in(strings, value_set=markers), pa.scalar(None, pa.string()), strings)
        try:
            floats = masked.cast(pa.float64())
        except pa.ArrowInvalid:
            return None
    # Arrow reads "nan", "inf" and overflowing exponents; the grammar rejects them.
    if pc.any(pc.invert(pc.is_finite(floats))).as_py():
        return None
    return floats


def string_column(column: Column | None, rows: int) -> list[object]:
    """A column's raw cells as a Python list (``None`` cells for an absent column)."""
    if column is None:
        return [None] * rows
    if pa is not None and isinstance(column, pa.Array):
        values: list[object] = column.to_pylist()
        return values
    return list(column)


@lru_cache(maxsize=4096)
def _parse_date_text(text: str) -> date:
    match = _DATE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a YYYY-MM-DD date: {describe(text)}")
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day)


def parse_date(value: object) -> date:
    """A ``YYYY-MM-DD`` cell as a date.

    Raises:
        ValueError: the cell is not a valid calendar date in that form.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a YYYY-MM-DD date: {describe(value)}")
    return _parse_date_text(value)


def eastern_to_utc(naive: datetime) -> datetime:
    """Attach New York time to a naive wall-clock time and convert it to UTC.

    Daylight saving follows the tz database. A wall time inside the spring-forward gap or
    the repeated fall-back hour is resolved with ``fold=0`` (PEP 495): the offset in force
    before the transition. US market data never falls in those hours (02:00 local, Sunday),
    so this only has to be deterministic.
    """
    return naive.replace(tzinfo=EASTERN).astimezone(UTC)


@lru_cache(maxsize=65536)
def _parse_eastern_text(text: str) -> datetime:
    match = _DATETIME.fullmatch(text) or _COMPACT.fullmatch(text)
    if match is None:
        raise ValueError(f"not a timestamp: {describe(text)}")
    year, month, day, hour, minute = (int(g) for g in match.groups()[:5])
    second = int(match.group(6) or 0)
    return eastern_to_utc(datetime(year, month, day, hour, minute, second))


def parse_eastern_timestamp(value: object) -> datetime:
    """A naive US/Eastern timestamp cell as an aware UTC datetime.

    Accepts ``YYYY-MM-DD HH:MM:SS``, ``YYYY-MM-DD HH:MM`` (intraday indicators) and the
    news feed's ``YYYYMMDDTHHMMSS`` / ``YYYYMMDDTHHMM``.

    Raises:
        ValueError: the cell is not such a timestamp or names an impossible time.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {describe(value)}")
    return _parse_eastern_text(value)


def session_close_utc(day: date) -> datetime:
    """When the US regular session of ``day`` closes, as an aware UTC datetime."""
    return eastern_to_utc(datetime.combine(day, SESSION_CLOSE))


def parse_eastern_key(value: object) -> datetime:
    """A series key that is either a date (valued at that day's close) or a timestamp.

    Raises:
        ValueError: the key is neither.
    """
    if isinstance(value, str) and len(value) == 10:
        return session_close_utc(parse_date(value))
    return parse_eastern_timestamp(value)


def parse_parameter(value: object) -> str | int | float:
    """A request or Meta Data parameter as int when integral, float when numeric, else str."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value if isinstance(value, int) or not value.is_integer() else int(value)
    text = str(value)
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        number = parse_number(text)
    except ValueError:
        return text
    return text if number is None else number

"""AlphaVantage ``datatype=csv`` bodies read into string columns.

A 10k-contract option chain is ~1.4 MB of CSV; pyarrow's multi-threaded reader turns it
into columns in a few milliseconds, against ~40 ms for ``orjson`` on the JSON form
(ARCHITECTURE.md §6). Every column is read as text so that CSV and JSON cells go through
the same number parser (``av_values``) and give identical records.

Ragged rows or bytes that are not UTF-8 make pyarrow give up on the whole body; the
standard-library reader then takes over, so one bad row costs that row only.
"""

from __future__ import annotations

import csv
import importlib
import io
from dataclasses import dataclass, field
from typing import Any

from quanticity.data_ingestion.av_values import Column, describe

try:
    pa: Any = importlib.import_module("pyarrow")
    pacsv: Any = importlib.import_module("pyarrow.csv")
except ImportError:  # pragma: no cover - exercised only where pyarrow is absent
    pa = None
    pacsv = None


class CsvShapeError(ValueError):
    """The body has no usable header (the caller reports it as a decode error)."""


@dataclass(frozen=True, slots=True)
class CsvColumns:
    """A CSV body as named columns of text cells.

    Attributes:
        header: the column names in file order.
        columns: name → cells (a pyarrow string array or a list of str).
        row_ids: for each position in the columns, the row's index among the body's data
            rows (0-based, header and blank lines not counted).
        ragged: ``(row index, detail)`` of rows with the wrong number of fields; they are
            not in ``columns``.
    """

    header: tuple[str, ...]
    columns: dict[str, Column]
    row_ids: list[int]
    ragged: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """How many rows the columns hold."""
        return len(self.row_ids)

    @property
    def rows_in(self) -> int:
        """How many data rows the body had, ragged ones included."""
        return len(self.row_ids) + len(self.ragged)


def read_csv_columns(body: bytes, *, prefer_arrow: bool = True) -> CsvColumns:
    """Read a CSV body (first line = header) into text columns.

    Args:
        body: the raw body; a UTF-8 byte-order mark and leading blank lines are ignored.
        prefer_arrow: use pyarrow when it is installed (tests turn it off to compare).

    Returns:
        The columns.

    Raises:
        CsvShapeError: the header is empty, has an empty or repeated name, or cannot be read.
    """
    body = body.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    first_line = body.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    header = _parse_header(first_line)
    if prefer_arrow and pacsv is not None:
        table = _arrow_read(body, header)
        if table is not None:
            columns: dict[str, Column] = {
                name: table.column(index).combine_chunks() for index, name in enumerate(header)
            }
            return CsvColumns(header, columns, list(range(table.num_rows)))
    return _stdlib_read(body, header)


def _parse_header(line: str) -> tuple[str, ...]:
    try:
        names = next(csv.reader([line]), [])
    except csv.Error as exc:
        raise CsvShapeError(f"unreadable CSV header: {exc}") from exc
    header = tuple(name.strip() for name in names)
    if not header or any(not name for name in header):
        raise CsvShapeError(f"CSV header has an empty column name: {describe(line, 80)}")
    if len(set(header)) != len(header):
        raise CsvShapeError(f"CSV header repeats a column name: {describe(line, 80)}")
    return header


def _arrow_read(body: bytes, header: tuple[str, ...]) -> Any:
    """The body as a pyarrow table of strings, or ``None`` when pyarrow refuses it."""
    read_options = pacsv.ReadOptions(column_names=list(header), skip_rows=1)
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        return pacsv.read_csv(pa.BufferReader(body), read_options=read_options, convert_options=convert_options)
    except (pa.ArrowException, ValueError):
        # Ragged rows, invalid UTF-8, quoted newlines: the row-by-row reader copes.
        return None


def _stdlib_read(body: bytes, header: tuple[str, ...]) -> CsvColumns:
    text = body.decode("utf-8", errors="replace")
    lines = iter(csv.reader(io.StringIO(text, newline="")))
    cells: list[list[str]] = [[] for _ in header]
    row_ids: list[int] = []
    ragged: list[tuple[int, str]] = []
    try:
        next(lines, None)  # the header, already parsed
        index = 0
        for row in lines:
            if not row:
                continue  # a blank line is not a row (pyarrow agrees)
            if len(row) != len(header):
                ragged.append((index, f"{len(row)} fields, header has {len(header)}"))
            else:
                for column, cell in zip(cells, row, strict=True):
                    column.append(cell)
                row_ids.append(index)
            index += 1
    except csv.Error as exc:
        raise CsvShapeError(f"unreadable CSV body: {exc}") from exc
    columns: dict[str, Column] = dict(zip(header, cells, strict=True))
    return CsvColumns(header, columns, row_ids, ragged)

"""Columnar records: number columns held as float64 arrays, and their binary wire form.

A 10k-contract option chain as Python lists is ~160k float objects: building them, dumping
them to JSON and parsing them back costs tens of milliseconds per chain at each hop. A
columnar record keeps its number columns as read-only ``float64`` numpy arrays (``NaN`` =
the source gave no value) from the normalizer to the store and the analytics kernels.

Wire form (``encode_columnar`` / ``decode_columnar``)::

    MAGIC (6 bytes, starts with NUL so it is never JSON) | header length (u32 LE) | header | columns

The header is the record's JSON without its number columns, plus ``"columns"``: the names
and row counts of the float64 columns that follow it, little-endian, in that order.
Decoding maps the arrays onto the received bytes (no copy). In JSON (``model_dump(mode=
"json")``, the tail CLI, dead letters, the chain documents) a number column is a list with
``null`` where a value is absent, exactly as the list form was, and either form decodes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

MAGIC = b"\x00QCOL\x01"
_LENGTH = struct.Struct("<I")
_FLOAT = np.dtype("<f8")


#: Cell types a number column takes as they are (subclasses such as numpy floats are checked one by one).
_PLAIN_CELLS = frozenset({float, int, type(None)})


class ColumnarPayloadError(ValueError):
    """A payload that starts like a columnar record but is not a well-formed one."""


def float_column(value: Any) -> NDArray[np.float64]:
    """A read-only 1-D float64 array from an array or a sequence of numbers and ``None`` (→ NaN).

    Raises:
        ValueError: not one-dimensional, or a cell that is not a number (strings, booleans…).
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise ValueError(f"a number column cannot be of dtype {value.dtype}")
        array = np.ascontiguousarray(value, dtype=np.float64)
        if array is value and value.flags.writeable:
            array = value.copy()  # the caller keeps a writable handle on its own array, not on ours
    elif isinstance(value, list | tuple):
        if not _PLAIN_CELLS.issuperset(map(type, value)):  # one C-level pass; the per-cell check only when needed
            for cell in value:
                if cell is not None and (isinstance(cell, bool) or not isinstance(cell, int | float)):
                    raise ValueError(f"a number column holds {type(cell).__name__} {cell!r}")
        array = np.array(value, dtype=np.float64)  # None → NaN
    else:
        raise ValueError(f"a number column must be a list or an array, not {type(value).__name__}")
    if array.ndim != 1:
        raise ValueError(f"a number column must be one-dimensional, got shape {array.shape}")
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array


def column_list(array: NDArray[np.float64]) -> list[float | None]:
    """A number column as JSON-ready values: ``None`` where it is NaN."""
    return [None if math.isnan(x) else x for x in array.tolist()]


#: A float64 column field of a columnar record (accepts lists with ``None``; dumps to lists in JSON).
FloatColumn = Annotated[
    NDArray[np.float64],
    PlainValidator(float_column),
    PlainSerializer(column_list, when_used="json"),
    WithJsonSchema({"type": "array", "items": {"type": ["number", "null"]}}),
]


def empty_column() -> NDArray[np.float64]:
    """An empty read-only column (a column the source does not send)."""
    return float_column(np.empty(0))


@dataclass(frozen=True, slots=True)
class ColumnarPayload:
    """A decoded columnar wire payload: the header fields, the arrays, and the bytes it came from."""

    fields: dict[str, Any]
    raw: bytes


class ColumnarMixin:
    """For a record model whose ``FLOAT_COLUMNS`` fields are ``FloatColumn`` arrays."""

    FLOAT_COLUMNS: ClassVar[tuple[str, ...]] = ()

    def columns_equal(self, other: object, ignore: Sequence[str] = ()) -> bool:
        """Equal type, equal fields, and equal columns (NaN equal to NaN), except the fields in ``ignore``."""
        if type(self) is not type(other):
            return False
        mine, theirs = self.__dict__, other.__dict__
        if mine.keys() != theirs.keys():
            return False
        for name, value in mine.items():
            if name in ignore:
                continue
            if name in self.FLOAT_COLUMNS:
                if not np.array_equal(value, theirs[name], equal_nan=True):
                    return False
            elif value != theirs[name]:
                return False
        return True


def encode_columnar(fields: Mapping[str, Any], columns: Sequence[str]) -> bytes:
    """The wire bytes of a record given as its Python-mode fields and the names of its float columns."""
    header = {name: value for name, value in fields.items() if name not in columns}
    arrays = [np.ascontiguousarray(fields[name], dtype=_FLOAT) for name in columns]
    header["columns"] = [[name, int(array.shape[0])] for name, array in zip(columns, arrays, strict=True)]
    text = orjson.dumps(header, option=orjson.OPT_UTC_Z)
    return b"".join((MAGIC, _LENGTH.pack(len(text)), text, *(array.tobytes() for array in arrays)))


def is_columnar(raw: bytes | bytearray | memoryview) -> bool:
    """Whether ``raw`` starts like a columnar record."""
    return bytes(raw[: len(MAGIC)]) == MAGIC


def decode_columnar(raw: bytes) -> ColumnarPayload:
    """The fields of a columnar payload, its columns as read-only arrays over ``raw``.

    Raises:
        ColumnarPayloadError: the payload is truncated, its header is not a JSON object with
            a valid ``columns`` list, or the column bytes do not add up.
    """
    raw = bytes(raw)
    start = len(MAGIC) + _LENGTH.size
    if len(raw) < start or not is_columnar(raw):
        raise ColumnarPayloadError(f"not a columnar payload ({len(raw)} bytes)")
    (size,) = _LENGTH.unpack_from(raw, len(MAGIC))
    if start + size > len(raw):
        raise ColumnarPayloadError(f"header of {size} bytes runs past the payload's {len(raw)} bytes")
    try:
        header = orjson.loads(raw[start : start + size])
    except orjson.JSONDecodeError as exc:
        raise ColumnarPayloadError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ColumnarPayloadError(f"header is a {type(header).__name__}, not an object")
    directory = header.pop("columns", None)
    if not isinstance(directory, list) or not all(
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        and entry[1] >= 0
        for entry in directory
    ):
        raise ColumnarPayloadError(f"header 'columns' is not a list of [name, rows]: {str(directory)[:120]}")
    offset = start + size
    buffer = memoryview(raw)
    for name, rows in directory:
        end = offset + rows * _FLOAT.itemsize
        if end > len(raw):
            raise ColumnarPayloadError(f"column {name!r} of {rows} rows runs past the payload's {len(raw)} bytes")
        header[name] = np.frombuffer(buffer[offset:end], dtype=_FLOAT)
        offset = end
    if offset != len(raw):
        raise ColumnarPayloadError(f"{len(raw) - offset} bytes after the last column")
    return ColumnarPayload(header, raw)

"""The parts every AlphaVantage reply is built from: Meta Data, data sections, keyed rows.

AlphaVantage numbers its Meta Data keys (``"2. Symbol"`` in time series, ``"1: Symbol"``
in indicators), decorates section names (``"Global Quote - DATA DELAYED BY 15
MINUTES"``) and keys time series by timestamp, newest first. These helpers find things
by meaning rather than by exact spelling, and put rows back into time order with one
deterministic rule for repeated timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from quanticity.data_ingestion.av_values import describe
from quanticity.data_ingestion.normalize_contract import NormalizeResult, decode_error

T = TypeVar("T")

_NUMBERED = re.compile(r"[0-9]+(?:\.[0-9]+)?[.:]\s*(.*)")
_SYMBOL = re.compile(r"[A-Z0-9.\-^]{1,16}")
INTRADAY_SECONDS = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600}


def strip_number(key: str) -> str:
    """``"5.1: Fast Period"`` → ``"Fast Period"``; an unnumbered key is returned as is."""
    match = _NUMBERED.fullmatch(key)
    return match.group(1) if match else key


def meta_fields(meta: object) -> dict[str, object]:
    """Meta Data as ``{"Symbol": …, "Interval": …}`` (numbering dropped); ``{}`` if absent."""
    if not isinstance(meta, Mapping):
        return {}
    return {strip_number(key): value for key, value in meta.items() if isinstance(key, str)}


def find_section(function: str, payload: Mapping[str, Any], prefix: str) -> Any:
    """The value of the first top-level key that starts with ``prefix``.

    Raises:
        RecordDecodeError: no key starts with ``prefix``.
    """
    for key, value in payload.items():
        if isinstance(key, str) and key.startswith(prefix):
            return value
    raise decode_error(function, "missing_section", f"no '{prefix}…' key (keys: {sorted(map(str, payload))[:8]})")


def keyed_rows(function: str, section: object) -> list[tuple[int, object, object]]:
    """``(row index, key, cells)`` for each entry of a time-keyed section, in payload order.

    Raises:
        RecordDecodeError: the section is not an object.
    """
    if not isinstance(section, Mapping):
        raise decode_error(function, "bad_shape", f"data section is {type(section).__name__}, not an object")
    return [(index, key, cells) for index, (key, cells) in enumerate(section.items())]


def is_symbol(value: object) -> bool:
    """Whether ``value`` is a symbol our records accept."""
    return isinstance(value, str) and _SYMBOL.fullmatch(value) is not None


def reply_symbol(function: str, *candidates: object) -> str:
    """The first non-empty candidate (Meta Data, then request) as a valid symbol.

    Raises:
        RecordDecodeError: no candidate is given, or the chosen one is not a valid symbol.
    """
    for candidate in candidates:
        if candidate not in (None, ""):
            if not is_symbol(candidate):
                raise decode_error(function, "bad_symbol", f"symbol {describe(candidate)}")
            return str(candidate)
    raise decode_error(function, "missing_parameter", "no symbol in Meta Data or request")


def reply_text(function: str, what: str, *candidates: object) -> str:
    """The first non-empty string candidate.

    Raises:
        RecordDecodeError: none is given.
    """
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return candidate
    raise decode_error(function, "missing_parameter", f"no {what} in Meta Data or request")


def check_time_zone(function: str, zone: object) -> None:
    """Accept the US/Eastern zone AlphaVantage stamps (incl. its ``"US/Eastern Time"`` quirk).

    Raises:
        RecordDecodeError: Meta Data names another zone, whose timestamps we would misplace.
    """
    if zone is not None and not (isinstance(zone, str) and zone.startswith("US/Eastern")):
        raise decode_error(function, "unsupported_time_zone", f"time zone {describe(zone)}")


def in_time_order(
    items: list[tuple[datetime, int, T]], result: NormalizeResult, label: str = "timestamp"
) -> list[tuple[datetime, int, T]]:
    """Sort ``(time, row index, item)`` oldest first; of rows sharing a time keep the first.

    "First" is payload order: AlphaVantage lists newest first, so the entry it put first
    is the one it considers current. The others are rejected as duplicates, never dropped
    silently.
    """
    items.sort(key=lambda item: (item[0], item[1]))
    kept: list[tuple[datetime, int, T]] = []
    for item in items:
        if kept and kept[-1][0] == item[0]:
            result.reject(f"duplicate_{label}", f"{label} {item[0].isoformat()} repeats row {kept[-1][1]}", item[1])
        else:
            kept.append(item)
    return kept

"""AlphaVantage payload → typed records: the one entry point the ingest agents call.

``normalize`` is pure: it takes the function, the request parameters, the reply (raw
bytes, JSON or CSV, or an already decoded JSON object) and a ``NormalizeContext``, and
returns a ``NormalizeResult``. It does no I/O and reads no clock.

Two kinds of failure, kept apart on purpose:

- the payload as a whole cannot be read (not JSON/CSV, an AlphaVantage error or throttle
  envelope, a missing data section, an unknown function): ``RecordDecodeError`` with
  ``topic="alphavantage"``; the agent routes it to the dead-letter topic;
- a row cannot be read: it goes to ``result.rejected_rows`` with a reason, and every other
  row still becomes a record. Rows kept with values withheld (junk greeks) are in
  ``result.row_flags``. Nothing is dropped silently: ``rows_in == rows_out +
  len(rejected_rows)``.

Functions: REALTIME_OPTIONS, HISTORICAL_OPTIONS, TIME_SERIES_INTRADAY, GLOBAL_QUOTE, the 19
technical indicators the scheduler polls, the 10 macro series and NEWS_SENTIMENT.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from quanticity.data_ingestion.av_values import describe
from quanticity.data_ingestion.normalize_contract import (
    DEFAULT_MAX_IMPLIED_VOL,
    DEFAULT_STALENESS,
    TOPIC,
    NormalizeContext,
    NormalizeResult,
    RejectedRow,
    RowFlag,
    decode_error,
)
from quanticity.data_ingestion.normalize_indicators import (
    INDICATORS,
    normalize_indicator_csv,
    normalize_indicator_json,
)
from quanticity.data_ingestion.normalize_market import (
    normalize_global_quote_csv,
    normalize_global_quote_json,
    normalize_intraday_csv,
    normalize_intraday_json,
)
from quanticity.data_ingestion.normalize_options import (
    OPTION_FUNCTIONS,
    normalize_options_csv,
    normalize_options_json,
)
from quanticity.data_ingestion.normalize_reference import (
    MACRO,
    normalize_macro_csv,
    normalize_macro_json,
    normalize_news_json,
)
from quanticity.errors import RecordDecodeError

__all__ = [
    "DEFAULT_MAX_IMPLIED_VOL",
    "DEFAULT_STALENESS",
    "SUPPORTED_FUNCTIONS",
    "TOPIC",
    "NormalizeContext",
    "NormalizeResult",
    "RejectedRow",
    "RowFlag",
    "normalize",
]

_JsonNormalizer = Callable[[str, Mapping[str, str], Mapping[str, Any], NormalizeContext], NormalizeResult]
_CsvNormalizer = Callable[[str, Mapping[str, str], bytes, NormalizeContext], NormalizeResult]

_ROUTES: dict[str, tuple[_JsonNormalizer, _CsvNormalizer | None]] = {
    **dict.fromkeys(OPTION_FUNCTIONS, (normalize_options_json, normalize_options_csv)),
    "TIME_SERIES_INTRADAY": (normalize_intraday_json, normalize_intraday_csv),
    "GLOBAL_QUOTE": (normalize_global_quote_json, normalize_global_quote_csv),
    **dict.fromkeys(INDICATORS, (normalize_indicator_json, normalize_indicator_csv)),
    **dict.fromkeys(MACRO, (normalize_macro_json, normalize_macro_csv)),
    # NEWS_SENTIMENT has no datatype parameter: it only ever answers JSON.
    "NEWS_SENTIMENT": (normalize_news_json, None),
}
SUPPORTED_FUNCTIONS = frozenset(_ROUTES)

# AlphaVantage's failure envelopes (reference §8). The client classifies them first; a
# normalizer that still meets one reports it rather than mistaking it for an empty reply.
_ERROR_KEYS = frozenset({"Error Message", "Information", "Note"})


def normalize(
    function: str,
    params: Mapping[str, str],
    payload: bytes | bytearray | memoryview | str | Mapping[str, Any],
    *,
    context: NormalizeContext,
) -> NormalizeResult:
    """Turn one AlphaVantage reply into records.

    Args:
        function: the AlphaVantage function that was called (case-insensitive).
        params: the request's query parameters (``symbol``, ``interval``, ``maturity``…);
            CSV replies carry no Meta Data, so they rely on these.
        payload: the reply body (JSON or CSV, sniffed from its first character), or a
            decoded JSON object.
        context: run id, mode, times and thresholds.

    Returns:
        The records, the rejected rows, the row flags and the reply-level tags.

    Raises:
        RecordDecodeError: the payload as a whole is unreadable; ``reason`` says why and
            ``detail`` names the function.
    """
    name = function.strip().upper()
    route = _ROUTES.get(name)
    if route is None:
        raise decode_error(name or repr(function), "unsupported_function", f"no normalizer for {describe(function)}")
    json_normalizer, csv_normalizer = route
    try:
        if isinstance(payload, Mapping):
            return json_normalizer(name, params, _checked(name, payload), context)
        body = _as_bytes(name, payload)
        if body[:1] in (b"{", b"["):
            return json_normalizer(name, params, _checked(name, _loads(name, body)), context)
        if body[:1] == b"<":
            raise decode_error(name, "html_body", f"an HTML page, not data: {describe(body[:80])}")
        if csv_normalizer is None:
            raise decode_error(name, "not_json", f"expected JSON, got {describe(body[:80])}")
        return csv_normalizer(name, params, body, context)
    except RecordDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the ingest agent must never die on a payload
        # Every known way a payload can be wrong is reported above with its own reason.
        # Reaching here is a normalizer bug: the payload is dead-lettered, never lost, and
        # the property tests assert that this reason never occurs.
        raise decode_error(name, "normalizer_bug", f"{type(exc).__name__}: {exc}") from exc


def _as_bytes(function: str, payload: bytes | bytearray | memoryview | str) -> bytes:
    body = payload.encode("utf-8", errors="replace") if isinstance(payload, str) else bytes(payload)
    body = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not body:
        raise decode_error(function, "empty_body", "the reply body is empty")
    return body


def _loads(function: str, body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise decode_error(function, "not_json", f"{exc}; body starts {describe(body[:80])}") from exc


def _checked(function: str, document: Any) -> Mapping[str, Any]:
    """The decoded reply, once it is known to be a data object and not an error envelope."""
    if not isinstance(document, Mapping):
        raise decode_error(function, "bad_shape", f"top level is {type(document).__name__}, not an object")
    if not document:
        raise decode_error(function, "empty_object", "the reply is {}")
    if set(document) <= _ERROR_KEYS:
        key = next(key for key in ("Error Message", "Information", "Note") if key in document)
        reason = "api_error" if key == "Error Message" else "api_message"
        raise decode_error(function, reason, f"{key}: {document[key]}")
    return document

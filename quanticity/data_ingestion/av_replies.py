"""Sorting AlphaVantage replies into classes, and keeping the API key out of what we emit.

AlphaVantage reports most failures as HTTP 200 with a JSON envelope whose wording has
moved between the ``Note`` and ``Information`` keys over the years. ``inspect_reply``
applies the reference's §8 order to one reply, as a pure function of its status,
content type and body, so the same rules serve the client, the tests and the simulator.

``redact`` removes the key from text: ``apikey=…`` in URLs, the daily-cap message that
echoes it ("We have detected your API key as …"), and the literal key.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from quanticity.data_ingestion.errors import ReplyClass

_MAX_DETAIL = 500  # AlphaVantage's texts are < 400 chars; an HTML page is cut here

# Every technical indicator AlphaVantage documents; rows sit under "Technical Analysis: <FUNCTION>".
_TECHNICAL = frozenset(
    (  # noqa: SIM905 - a word list reads better than 53 one-name lines
        "SMA EMA WMA DEMA TEMA TRIMA KAMA MAMA T3 VWAP MACD MACDEXT STOCH STOCHF RSI STOCHRSI WILLR ADX ADXR APO PPO"
        " MOM BOP CCI CMO ROC ROCR AROON AROONOSC MFI TRIX ULTOSC DX MINUS_DI PLUS_DI MINUS_DM PLUS_DM BBANDS"
        " MIDPOINT MIDPRICE SAR TRANGE ATR NATR AD ADOSC OBV HT_TRENDLINE HT_SINE HT_TRENDMODE HT_DCPERIOD"
        " HT_DCPHASE HT_PHASOR"
    ).split()
)
_MACRO = frozenset(
    (  # noqa: SIM905 - as above
        "REAL_GDP REAL_GDP_PER_CAPITA TREASURY_YIELD FEDERAL_FUNDS_RATE CPI INFLATION RETAIL_SALES DURABLES"
        " UNEMPLOYMENT NONFARM_PAYROLL"
    ).split()
)
# Functions whose rows sit under an exact top-level key (reference §3, §4, §6, §7, §10, §11).
_EXACT_DATA_KEY: dict[str, str] = {
    **dict.fromkeys(_MACRO, "data"),
    **dict.fromkeys(
        ("REALTIME_OPTIONS", "HISTORICAL_OPTIONS", "REALTIME_OPTIONS_FMV", "REALTIME_BULK_QUOTES", "INDEX_DATA"), "data"
    ),
    "NEWS_SENTIMENT": "feed",
    "MARKET_STATUS": "markets",
}
_ENVELOPE_KEYS = frozenset({"Meta Data", "endpoint", "message"})
_CSV_ROW = re.compile(rb"\n\s*\S")  # a non-blank line after the header
_ARTIFICIAL_SYMBOL = "XXYYZZ"  # AlphaVantage's fake underlying in samples shown to non-entitled keys

# --------------------------------------------------------------------------- redaction
_QUERY_KEY = re.compile(r"(apikey=)[^&\s\"'<>]+", re.IGNORECASE)
_ECHOED_KEY = re.compile(r"(api key as\s+)[^\s,;]+", re.IGNORECASE)  # the daily-cap text echoes the key
# A literal key is replaced only from 8 characters on (real keys have 16): replacing a short
# stand-in key such as "demo" everywhere would mangle AlphaVantage's own texts ("for demo
# purposes"), and the two patterns above already catch every place a key is known to appear.
MIN_LITERAL_SECRET = 8


def redact(text: str, secret: str | None = None) -> str:
    """Return ``text`` with API keys replaced by ``***``.

    Args:
        text: a message, URL or body.
        secret: the key itself; replaced wherever it occurs when it is 8+ characters long.

    Returns:
        The text with ``apikey=…`` values, AlphaVantage's "API key as …" echo and the key removed.
    """
    if secret and len(secret) >= MIN_LITERAL_SECRET:
        text = text.replace(secret, "***")
    return _ECHOED_KEY.sub(r"\1***", _QUERY_KEY.sub(r"\1***", text))


class _RedactingLogFilter(logging.Filter):
    """Rewrites stdlib log records of httpx/httpcore, whose request log line carries the full URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install_log_redaction() -> None:
    """Redact ``apikey=…`` from the log records of httpx and httpcore (idempotent)."""
    # Idempotent, so building many clients (tests) does not stack filters.
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactingLogFilter) for f in logger.filters):
            logger.addFilter(_RedactingLogFilter())


# --------------------------------------------------------------------------- classification
@dataclass(frozen=True, slots=True)
class Verdict:
    """The classification of one reply.

    Attributes:
        reply_class: what the reply means.
        detail: AlphaVantage's message or a description of the fault ("" for data).
        data_key: the top-level key holding the rows, for JSON data replies.
        payload: the parsed JSON document (``None`` for CSV and unparseable bodies).
    """

    reply_class: ReplyClass
    detail: str = ""
    data_key: str | None = None
    payload: Any = None


def _data_key(function: str, document: dict[str, Any]) -> str | None:
    exact = _EXACT_DATA_KEY.get(function)
    if exact is not None:
        return exact if exact in document else None
    if function.startswith("TIME_SERIES_"):
        # "Time Series (5min)", "Weekly Time Series"…; matched loosely because the entitlement
        # decoration of these keys is undocumented (reference §2).
        return next((k for k in document if "Time Series" in k), None)
    if function == "GLOBAL_QUOTE":
        return next((k for k in document if k.startswith("Global Quote")), None)  # "… - DATA DELAYED BY 15 MINUTES"
    if function in _TECHNICAL:
        return next((k for k in document if k.startswith("Technical Analysis")), None)
    # A function this client has no shape for: any non-envelope key is its data.
    return next((k for k in document if k not in _ENVELOPE_KEYS), None)


def _classify_message(text: str) -> ReplyClass:
    lower = text.lower()
    # "is a premium endpoint", not just "premium endpoint": the burst text ends with
    # "…and instantly unlock all premium endpoints" and is a throttle.
    if "is a premium endpoint" in lower:
        return ReplyClass.NOT_ENTITLED
    if "demo" in lower or "apikey" in lower:
        return ReplyClass.INVALID_API_KEY
    # Both daily-cap wordings, but not the burst text, which mentions "(25 requests per day)" too.
    if "25 requests per day" in lower and ("detected your api key" in lower or "rate limit is 25 requests" in lower):
        return ReplyClass.DAILY_CAP
    return ReplyClass.THROTTLED


def _classify_document(function: str, document: Any) -> Verdict:
    if not isinstance(document, dict):
        return Verdict(ReplyClass.UNEXPECTED_PAYLOAD, f"JSON {type(document).__name__} instead of an object")
    error = document.get("Error Message")
    if isinstance(error, str):
        lower = error.lower()
        if "apikey" in lower:
            return Verdict(ReplyClass.INVALID_API_KEY, error)
        if "does not exist" in lower:
            return Verdict(ReplyClass.UNKNOWN_FUNCTION, error)
        return Verdict(ReplyClass.BAD_REQUEST, error)
    notice = document.get("Information", document.get("Note"))
    if isinstance(notice, str):
        # Redacted first: the daily-cap text echoes the key, and a key containing "demo"
        # must not turn that text into an authentication failure.
        notice = redact(notice)
        return Verdict(_classify_message(notice), notice)
    message = document.get("message")
    if "endpoint" in document and isinstance(message, str):
        rows = document.get("data")
        first = rows[0] if isinstance(rows, list) and rows else None
        fake = isinstance(first, dict) and first.get("symbol") == _ARTIFICIAL_SYMBOL
        if fake or "premium" in message.lower() or "artificial" in message.lower():
            return Verdict(ReplyClass.NOT_ENTITLED, message)
    key = _data_key(function, document)
    if key is None:
        shown = ", ".join(list(document)[:5]) or "none"
        return Verdict(ReplyClass.UNEXPECTED_PAYLOAD, f"no data key for {function} (top-level keys: {shown})")
    rows = document[key]
    empty = isinstance(rows, dict | list) and not rows
    return Verdict(ReplyClass.EMPTY if empty else ReplyClass.OK, "", key, document)


def inspect_reply(function: str, status: int, content_type: str, body: bytes, *, datatype: str = "json") -> Verdict:
    """Classify one AlphaVantage reply and keep what the caller needs from it.

    Args:
        function: the ``function`` that was requested (it decides the expected data key).
        status: the HTTP status.
        content_type: the ``Content-Type`` header ("" when absent).
        body: the whole body.
        datatype: ``json`` or ``csv``, as requested; a CSV request may still get a JSON error.

    Returns:
        The verdict; ``payload`` holds the parsed document so JSON is parsed only once.
    """
    if status >= 500 or status == 408:
        return Verdict(ReplyClass.SERVER_ERROR, f"HTTP {status}")
    if status == 429:
        return Verdict(ReplyClass.THROTTLED, "HTTP 429")
    if status >= 300:
        return Verdict(ReplyClass.BAD_REQUEST, f"HTTP {status}")
    head = body.lstrip()[:1]
    if not head:
        return Verdict(ReplyClass.SERVER_ERROR, "empty body")
    if head == b"<" or "html" in content_type.lower():
        return Verdict(ReplyClass.SERVER_ERROR, "HTML page instead of data: " + _snippet(body))
    if datatype == "csv" and head not in (b"{", b"["):
        # A header line and no row is a success with nothing in it, as an empty JSON list is.
        # The search stops at the first row: a 10k-contract chain is not scanned.
        has_rows = _CSV_ROW.search(body) is not None
        return Verdict(ReplyClass.OK if has_rows else ReplyClass.EMPTY)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Truncated or garbled: seen when the service is in trouble, so it is worth a retry.
        return Verdict(ReplyClass.SERVER_ERROR, "body is not complete JSON: " + _snippet(body))
    verdict = _classify_document(function, document)
    return Verdict(verdict.reply_class, redact(verdict.detail)[:_MAX_DETAIL], verdict.data_key, verdict.payload)


def classify_reply(function: str, status: int, content_type: str, body: bytes, *, datatype: str = "json") -> ReplyClass:
    """Return the ``ReplyClass`` of a reply (see ``inspect_reply``)."""
    return inspect_reply(function, status, content_type, body, datatype=datatype).reply_class


def _snippet(body: bytes) -> str:
    return redact(body[:200].decode("utf-8", "replace").replace("\n", " "))

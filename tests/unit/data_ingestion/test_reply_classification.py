"""Tests of quanticity.data_ingestion.av_replies: every reply of reference §8 lands in its class.

The bodies are the recorded payloads under ``fixtures/`` (see its README for provenance).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanticity.data_ingestion.av_replies import classify_reply, inspect_reply, redact
from quanticity.data_ingestion.errors import ReplyClass

FIXTURES = Path(__file__).parent / "fixtures"
JSON = "application/json"


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rewrap(name: str, old: str, new: str) -> bytes:
    """The fixture with its top-level key ``old`` renamed to ``new`` (the Note/Information flip)."""
    document = json.loads(body(name))
    document[new] = document.pop(old)
    return json.dumps(document).encode()


# --------------------------------------------------------------------------- §8 envelopes
@pytest.mark.parametrize(
    ("fixture", "function", "expected"),
    [
        ("error_invalid_call.json", "TIME_SERIES_DAILY", ReplyClass.BAD_REQUEST),
        ("error_unknown_function.json", "FOO", ReplyClass.UNKNOWN_FUNCTION),
        ("error_unknown_function_empty.json", "GLOBAL_QUOTE", ReplyClass.UNKNOWN_FUNCTION),
        ("error_invalid_apikey.json", "GLOBAL_QUOTE", ReplyClass.INVALID_API_KEY),
        ("information_daily_cap.json", "GLOBAL_QUOTE", ReplyClass.DAILY_CAP),
        ("information_daily_cap_thank_you.json", "GLOBAL_QUOTE", ReplyClass.DAILY_CAP),
        ("information_free_burst.json", "GLOBAL_QUOTE", ReplyClass.THROTTLED),
        ("information_premium_quota.json", "REALTIME_OPTIONS", ReplyClass.THROTTLED),
        ("information_premium_endpoint.json", "REALTIME_OPTIONS", ReplyClass.NOT_ENTITLED),
        ("information_demo_key.json", "GLOBAL_QUOTE", ReplyClass.INVALID_API_KEY),
        ("note_legacy_frequency.json", "TIME_SERIES_INTRADAY", ReplyClass.THROTTLED),
    ],
)
def test_every_section_8_text_gets_its_class(fixture: str, function: str, expected: ReplyClass) -> None:
    """Each verbatim §8 body is classified as the reference's "better client" order says."""
    verdict = inspect_reply(function, 200, JSON, body(fixture))

    assert verdict.reply_class is expected
    assert verdict.detail  # AlphaVantage's own text is kept (redacted) for the exception
    assert verdict.payload is None


@pytest.mark.parametrize(
    "fixture",
    [
        "information_daily_cap.json",
        "information_free_burst.json",
        "information_premium_quota.json",
        "information_premium_endpoint.json",
        "information_demo_key.json",
    ],
)
def test_note_and_information_keys_are_equivalent(fixture: str) -> None:
    """AlphaVantage moved its throttle texts between Note and Information twice; both classify alike."""
    as_information = classify_reply("GLOBAL_QUOTE", 200, JSON, body(fixture))
    as_note = classify_reply("GLOBAL_QUOTE", 200, JSON, rewrap(fixture, "Information", "Note"))

    assert as_note is as_information


def test_legacy_note_under_information_is_still_a_throttle() -> None:
    """The 2018-2023 Note text classifies the same under the key used today."""
    reply = rewrap("note_legacy_frequency.json", "Note", "Information")

    assert classify_reply("GLOBAL_QUOTE", 200, JSON, reply) is ReplyClass.THROTTLED


def test_burst_text_is_neither_the_daily_cap_nor_a_premium_endpoint() -> None:
    """The burst text mentions "(25 requests per day)" and "premium endpoints" but is a throttle."""
    text = body("information_free_burst.json").decode()
    assert "25 requests per day" in text
    assert "premium endpoints" in text

    assert classify_reply("GLOBAL_QUOTE", 200, JSON, text.encode()) is ReplyClass.THROTTLED


def test_daily_cap_echo_of_the_key_is_redacted_from_the_detail() -> None:
    """AlphaVantage's daily-cap text repeats the key; the verdict's detail must not."""
    key = "Q1W2E3R4T5Y6U7I8"
    reply = body("information_daily_cap.json").replace(b"<KEY>", key.encode())

    verdict = inspect_reply("GLOBAL_QUOTE", 200, JSON, reply)

    assert verdict.reply_class is ReplyClass.DAILY_CAP
    assert key not in verdict.detail
    assert "API key as ***" in verdict.detail


def test_a_key_containing_demo_does_not_turn_the_daily_cap_into_an_auth_failure() -> None:
    """Classification reads the redacted text, so the echoed key cannot match the "demo" rule."""
    reply = body("information_daily_cap.json").replace(b"<KEY>", b"XDEMOX1234567890")

    assert classify_reply("GLOBAL_QUOTE", 200, JSON, reply) is ReplyClass.DAILY_CAP


# --------------------------------------------------------------------------- options envelopes
@pytest.mark.parametrize(
    ("fixture", "function"),
    [
        ("realtime_options_artificial.json", "REALTIME_OPTIONS"),
        ("realtime_options_artificial_symbol_only.json", "REALTIME_OPTIONS"),
        ("realtime_bulk_quotes_artificial.json", "REALTIME_BULK_QUOTES"),
    ],
)
def test_artificial_samples_are_not_entitled_not_data(fixture: str, function: str) -> None:
    """A premium message or an XXYYZZ row means the key is not entitled, whatever ``data`` holds."""
    verdict = inspect_reply(function, 200, JSON, body(fixture))

    assert verdict.reply_class is ReplyClass.NOT_ENTITLED
    assert verdict.payload is None


def test_empty_chain_is_an_empty_success() -> None:
    """``message == "success"`` with ``data: []`` is a result with no rows, not an error."""
    verdict = inspect_reply("REALTIME_OPTIONS", 200, JSON, body("realtime_options_empty_chain.json"))

    assert verdict.reply_class is ReplyClass.EMPTY
    assert verdict.data_key == "data"


def test_historical_options_rows_are_data() -> None:
    verdict = inspect_reply("HISTORICAL_OPTIONS", 200, JSON, body("historical_options.json"))

    assert verdict.reply_class is ReplyClass.OK
    assert verdict.data_key == "data"
    assert verdict.payload["data"][0]["contractID"] == "IBM260904C00115000"


# --------------------------------------------------------------------------- data keys per family
@pytest.mark.parametrize(
    ("fixture", "function", "data_key"),
    [
        ("time_series_intraday_5min.json", "TIME_SERIES_INTRADAY", "Time Series (5min)"),
        ("global_quote.json", "GLOBAL_QUOTE", "Global Quote"),
        ("global_quote_delayed.json", "GLOBAL_QUOTE", "Global Quote - DATA DELAYED BY 15 MINUTES"),
        ("technical_willr.json", "WILLR", "Technical Analysis: WILLR"),
        ("macro_treasury_yield.json", "TREASURY_YIELD", "data"),
        ("news_sentiment.json", "NEWS_SENTIMENT", "feed"),
        ("historical_options.json", "HISTORICAL_OPTIONS", "data"),
        ("market_status.json", "MARKET_STATUS", "markets"),
    ],
)
def test_each_function_family_finds_its_data_key(fixture: str, function: str, data_key: str) -> None:
    """The expected data key of every family is recognised, including GLOBAL_QUOTE's delayed decoration."""
    verdict = inspect_reply(function, 200, JSON, body(fixture))

    assert verdict.reply_class is ReplyClass.OK
    assert verdict.data_key == data_key
    assert verdict.payload[data_key]


@pytest.mark.parametrize(
    ("fixture", "wrong_function"),
    [
        ("time_series_intraday_5min.json", "GLOBAL_QUOTE"),
        ("global_quote.json", "TIME_SERIES_INTRADAY"),
        ("technical_willr.json", "NEWS_SENTIMENT"),
        ("macro_treasury_yield.json", "SMA"),
        ("news_sentiment.json", "REALTIME_OPTIONS"),
        ("market_status.json", "CPI"),
    ],
)
def test_a_payload_without_the_functions_data_key_is_unexpected(fixture: str, wrong_function: str) -> None:
    """A JSON object that lacks the data key of the requested function is UnexpectedPayload."""
    verdict = inspect_reply(wrong_function, 200, JSON, body(fixture))

    assert verdict.reply_class is ReplyClass.UNEXPECTED_PAYLOAD
    assert wrong_function in verdict.detail


def test_unknown_symbol_global_quote_is_empty() -> None:
    assert classify_reply("GLOBAL_QUOTE", 200, JSON, body("global_quote_unknown_symbol.json")) is ReplyClass.EMPTY


@pytest.mark.parametrize(
    ("function", "document"),
    [
        ("TIME_SERIES_INTRADAY", {"Meta Data": {}, "Time Series (1min)": {}}),
        ("SMA", {"Meta Data": {}, "Technical Analysis: SMA": {}}),
        ("CPI", {"name": "CPI", "interval": "monthly", "unit": "index", "data": []}),
        ("NEWS_SENTIMENT", {"items": "0", "feed": []}),
    ],
)
def test_empty_rows_under_the_right_key_are_empty_results(function: str, document: dict[str, object]) -> None:
    assert classify_reply(function, 200, JSON, json.dumps(document).encode()) is ReplyClass.EMPTY


def test_a_function_without_a_known_shape_takes_any_non_envelope_key() -> None:
    """Functions this client has no shape for (put/call ratios…) are not rejected for it."""
    reply = b'{"endpoint": "Realtime Put/Call Ratio", "message": "success", "ratio": [{"symbol": "IBM"}]}'

    verdict = inspect_reply("REALTIME_PUT_CALL_RATIO", 200, JSON, reply)

    assert (verdict.reply_class, verdict.data_key) == (ReplyClass.OK, "ratio")


# --------------------------------------------------------------------------- server trouble
def test_html_page_is_a_server_error() -> None:
    verdict = inspect_reply("GLOBAL_QUOTE", 200, "text/html; charset=utf-8", body("application_error.html"))

    assert verdict.reply_class is ReplyClass.SERVER_ERROR
    assert "HTML" in verdict.detail


def test_html_body_is_recognised_even_when_labelled_json() -> None:
    assert classify_reply("GLOBAL_QUOTE", 200, JSON, body("application_error.html")) is ReplyClass.SERVER_ERROR


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_5xx_is_a_server_error_whatever_the_body(status: int) -> None:
    assert classify_reply("GLOBAL_QUOTE", status, JSON, body("global_quote.json")) is ReplyClass.SERVER_ERROR


def test_http_429_is_a_throttle_and_other_4xx_a_bad_request() -> None:
    assert classify_reply("GLOBAL_QUOTE", 429, "", b"") is ReplyClass.THROTTLED
    assert classify_reply("GLOBAL_QUOTE", 404, "text/plain", b"not found") is ReplyClass.BAD_REQUEST


@pytest.mark.parametrize("cut", [1, 40, 200, -3])
def test_truncated_json_is_a_server_error(cut: int) -> None:
    """A body cut anywhere (the connection dropped mid-chain) is transient, not a payload error."""
    whole = body("historical_options.json")

    assert classify_reply("HISTORICAL_OPTIONS", 200, JSON, whole[:cut]) is ReplyClass.SERVER_ERROR


def test_empty_body_is_a_server_error() -> None:
    assert classify_reply("GLOBAL_QUOTE", 200, JSON, b"") is ReplyClass.SERVER_ERROR


def test_empty_object_is_an_unexpected_payload() -> None:
    """``{}`` (a §12 fault) carries neither data nor an AlphaVantage message."""
    verdict = inspect_reply("GLOBAL_QUOTE", 200, JSON, b"{}")

    assert verdict.reply_class is ReplyClass.UNEXPECTED_PAYLOAD
    assert "none" in verdict.detail


def test_json_that_is_not_an_object_is_an_unexpected_payload() -> None:
    assert classify_reply("REALTIME_OPTIONS", 200, JSON, b"[]") is ReplyClass.UNEXPECTED_PAYLOAD


# --------------------------------------------------------------------------- CSV
def test_csv_rows_are_data_without_parsing() -> None:
    verdict = inspect_reply(
        "TIME_SERIES_INTRADAY", 200, "text/csv", body("time_series_intraday_5min.csv"), datatype="csv"
    )

    assert verdict.reply_class is ReplyClass.OK
    assert verdict.payload is None


def test_csv_header_without_rows_is_empty() -> None:
    reply = body("realtime_options_header_only.csv")

    assert classify_reply("REALTIME_OPTIONS", 200, "text/csv", reply, datatype="csv") is ReplyClass.EMPTY


def test_csv_request_answered_with_a_json_error_is_classified_as_json() -> None:
    """AlphaVantage answers errors in JSON whatever ``datatype`` asked for."""
    reply = body("information_premium_quota.json")

    assert classify_reply("TIME_SERIES_INTRADAY", 200, JSON, reply, datatype="csv") is ReplyClass.THROTTLED


def test_csv_request_answered_with_html_is_a_server_error() -> None:
    reply = body("application_error.html")

    assert classify_reply("TIME_SERIES_INTRADAY", 200, "text/html", reply, datatype="csv") is ReplyClass.SERVER_ERROR


# --------------------------------------------------------------------------- redaction and robustness
def test_redact_removes_query_keys_echoes_and_the_literal_key() -> None:
    key = "ABCDEFGH12345678"
    text = (
        f"GET https://www.alphavantage.co/query?function=SMA&apikey={key}&symbol=IBM "
        f"We have detected your API key as {key} and our standard API rate limit ... raw {key}"
    )

    cleaned = redact(text, key)

    assert key not in cleaned
    assert "apikey=***&symbol=IBM" in cleaned
    assert "API key as *** and" in cleaned


def test_redact_leaves_short_stand_in_keys_in_prose_alone() -> None:
    """A short key like "demo" is only removed where a key is known to appear, not from every word."""
    assert redact("The **demo** API key is for demo purposes only.", "demo") == (
        "The **demo** API key is for demo purposes only."
    )
    assert redact("query?apikey=demo&function=X", "demo") == "query?apikey=***&function=X"


@given(
    function=st.sampled_from(["GLOBAL_QUOTE", "REALTIME_OPTIONS", "SMA", "CPI", "NEWS_SENTIMENT", "NOT_A_FUNCTION"]),
    status=st.integers(min_value=100, max_value=599),
    content_type=st.sampled_from(["", JSON, "text/html", "text/csv"]),
    reply=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
            max_leaves=12,
        ).map(lambda document: json.dumps(document).encode()),
    ),
    datatype=st.sampled_from(["json", "csv"]),
)
def test_classification_never_raises(
    function: str, status: int, content_type: str, reply: bytes, datatype: str
) -> None:
    """Any status, header and body yields a class: the classifier is total."""
    verdict = inspect_reply(function, status, content_type, reply, datatype=datatype)

    assert isinstance(verdict.reply_class, ReplyClass)
    assert verdict.reply_class is not ReplyClass.TRANSPORT_ERROR
    if not verdict.reply_class.is_success:
        assert verdict.payload is None

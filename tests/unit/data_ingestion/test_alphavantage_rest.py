"""Tests of quanticity.data_ingestion.alphavantage_rest: requests, retries, redaction and metrics.

The network is an ``httpx.MockTransport`` replaying the recorded fixtures; time and the
rate limiter are fakes, so retries with backoff run instantly.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from quanticity.data_ingestion.alphavantage_rest import AlphaVantageClient, HttpOptions, RetryPolicy, h2_available
from quanticity.data_ingestion.av_metrics import AlphaVantageMetrics
from quanticity.data_ingestion.errors import (
    AlphaVantageBadRequest,
    AlphaVantageDailyCapReached,
    AlphaVantageError,
    AlphaVantageInvalidApiKey,
    AlphaVantageNotEntitled,
    AlphaVantageServerError,
    AlphaVantageThrottled,
    AlphaVantageTransportError,
    AlphaVantageUnexpectedPayload,
    AlphaVantageUnknownFunction,
    ReplyClass,
)
from quanticity.errors import ConfigError, QuanticityError
from quanticity.settings.model import AlphaVantageSettings

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "K3YS3CR3T9876543"
BASE = "http://av.test/query"
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def json_reply(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=fixture(name), headers={"content-type": "application/json"})


class Replay:
    """A MockTransport handler that answers with the given replies in order and records requests."""

    def __init__(self, replies: Iterable[httpx.Response | Exception]) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeLimiter:
    def __init__(self, wait: float = 0.0) -> None:
        self.wait = wait
        self.functions: list[str] = []

    async def acquire(self, function: str) -> float:
        self.functions.append(function)
        return self.wait


class Rig:
    """A client wired to a replay, fake time, a fake limiter and a fresh registry."""

    def __init__(
        self, replies: Iterable[httpx.Response | Exception], retry: RetryPolicy | None = None, wait: float = 0.0
    ) -> None:
        self.replay = Replay(replies)
        self.time = FakeTime()
        self.limiter = FakeLimiter(wait)
        self.registry = CollectorRegistry()
        self.client = AlphaVantageClient(
            SecretStr(KEY),
            self.limiter,
            AlphaVantageMetrics(self.registry),
            base_url=BASE,
            retry=retry or RetryPolicy(),
            transport=httpx.MockTransport(self.replay),
            sleep=self.time.sleep,
            clock=self.time.clock,
            rng=random.Random(7),  # noqa: S311 - reproducible jitter, not cryptography
        )

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- requests and replies
async def test_call_sends_function_params_and_key_and_returns_the_data() -> None:
    rig = Rig([json_reply("global_quote.json")])

    reply = await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    (request,) = rig.replay.requests
    assert str(request.url.copy_with(query=None)) == BASE
    assert dict(request.url.params) == {"function": "GLOBAL_QUOTE", "symbol": "IBM", "apikey": KEY}
    assert reply.reply_class is ReplyClass.OK
    assert reply.data_key == "Global Quote"
    assert reply.data["Global Quote"]["05. price"] == "121.7400"
    assert reply.params == {"symbol": "IBM"}
    assert (reply.attempts, reply.status, reply.datatype) == (1, 200, "json")
    assert rig.limiter.functions == ["GLOBAL_QUOTE"]
    assert rig.sample("alphavantage_calls_total", function="GLOBAL_QUOTE", outcome="ok") == 1
    assert rig.sample("alphavantage_latency_ms_count", function="GLOBAL_QUOTE") == 1


async def test_csv_returns_the_raw_text() -> None:
    csv = fixture("time_series_intraday_5min.csv")
    rig = Rig([httpx.Response(200, content=csv, headers={"content-type": "application/x-download"})])

    reply = await rig.client.call("TIME_SERIES_INTRADAY", symbol="IBM", interval="5min", datatype="csv")

    assert reply.datatype == "csv"
    assert reply.body == csv
    assert reply.text.startswith("timestamp,open,high,low,close,volume")
    assert reply.data is None
    assert rig.replay.requests[0].url.params["datatype"] == "csv"


async def test_empty_result_is_returned_not_raised() -> None:
    rig = Rig([json_reply("realtime_options_empty_chain.json")])

    reply = await rig.client.call("REALTIME_OPTIONS", symbol="SPY", require_greeks="true")

    assert reply.is_empty
    assert rig.sample("alphavantage_calls_total", function="REALTIME_OPTIONS", outcome="empty") == 1


async def test_limiter_waits_are_reported_on_the_reply() -> None:
    rig = Rig([json_reply("information_premium_quota.json"), json_reply("global_quote.json")], wait=0.25)

    reply = await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert reply.attempts == 2
    assert reply.waited_s == pytest.approx(0.5)
    assert rig.limiter.functions == ["GLOBAL_QUOTE", "GLOBAL_QUOTE"]  # every retry takes a token too


# --------------------------------------------------------------------------- retries
async def test_transient_faults_are_retried_until_success() -> None:
    """Throttle, 503, HTML and truncated JSON are all transient; the fifth attempt succeeds."""
    truncated = httpx.Response(200, content=fixture("historical_options.json")[:100])
    rig = Rig(
        [
            json_reply("information_free_burst.json"),
            json_reply("global_quote.json", status=503),
            httpx.Response(200, content=fixture("application_error.html"), headers={"content-type": "text/html"}),
            truncated,
            json_reply("historical_options.json"),
        ]
    )

    reply = await rig.client.call("HISTORICAL_OPTIONS", symbol="IBM")

    assert reply.attempts == 5
    assert len(rig.time.sleeps) == 4
    fn = "HISTORICAL_OPTIONS"
    assert rig.sample("alphavantage_calls_total", function=fn, outcome="throttled") == 1
    assert rig.sample("alphavantage_calls_total", function=fn, outcome="server_error") == 3
    assert rig.sample("alphavantage_calls_total", function=fn, outcome="ok") == 1
    assert rig.sample("alphavantage_throttle_events_total", function=fn) == 1
    assert rig.sample("alphavantage_retries_total", function=fn, reason="server_error") == 3


@pytest.mark.parametrize(
    "fault",
    [httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout("connect timed out"), httpx.ConnectError("refused")],
)
async def test_timeouts_and_connection_errors_are_retried(fault: Exception) -> None:
    rig = Rig([fault, json_reply("global_quote.json")])

    reply = await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert reply.attempts == 2
    assert rig.sample("alphavantage_calls_total", function="GLOBAL_QUOTE", outcome="transport_error") == 1


@pytest.mark.parametrize(
    ("reply", "function", "error"),
    [
        ("error_invalid_call.json", "TIME_SERIES_DAILY", AlphaVantageBadRequest),
        ("error_unknown_function.json", "FOO", AlphaVantageUnknownFunction),
        ("error_invalid_apikey.json", "GLOBAL_QUOTE", AlphaVantageInvalidApiKey),
        ("information_demo_key.json", "GLOBAL_QUOTE", AlphaVantageInvalidApiKey),
        ("information_premium_endpoint.json", "REALTIME_OPTIONS", AlphaVantageNotEntitled),
        ("realtime_options_artificial.json", "REALTIME_OPTIONS", AlphaVantageNotEntitled),
        ("information_daily_cap.json", "GLOBAL_QUOTE", AlphaVantageDailyCapReached),
        ("market_status.json", "GLOBAL_QUOTE", AlphaVantageUnexpectedPayload),
    ],
)
async def test_permanent_classes_raise_at_once(reply: str, function: str, error: type[AlphaVantageError]) -> None:
    rig = Rig([json_reply(reply)])

    with pytest.raises(error) as raised:
        await rig.client.call(function, symbol="IBM")

    assert len(rig.replay.requests) == 1
    assert rig.time.sleeps == []
    assert not raised.value.retryable
    assert (raised.value.function, raised.value.attempts, raised.value.status) == (function, 1, 200)
    assert isinstance(raised.value, QuanticityError)
    assert rig.sample("alphavantage_calls_total", function=function, outcome=error.reply_class.value) == 1


async def test_empty_object_is_not_retried() -> None:
    rig = Rig([httpx.Response(200, content=b"{}")])

    with pytest.raises(AlphaVantageUnexpectedPayload):
        await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert len(rig.replay.requests) == 1


async def test_errors_a_person_must_fix_say_what_to_do() -> None:
    rig = Rig([json_reply("information_premium_endpoint.json")])

    with pytest.raises(AlphaVantageNotEntitled) as raised:
        await rig.client.call("REALTIME_OPTIONS", symbol="SPY")

    assert raised.value.operator_action
    assert "Operator action:" in str(raised.value)
    assert "premium endpoint" in raised.value.detail


async def test_retries_are_bounded_by_attempts() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=15.0, max_total_s=600.0)
    rig = Rig([json_reply("information_premium_quota.json")], retry=policy)

    with pytest.raises(AlphaVantageThrottled) as raised:
        await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert raised.value.attempts == 4
    assert len(rig.replay.requests) == 4
    assert len(rig.time.sleeps) == 3
    for retry, slept in enumerate(rig.time.sleeps, start=1):
        # throttles wait at least the floor, and never more than the exponential cap
        assert policy.throttle_min_delay_s <= slept <= max(policy.throttle_min_delay_s, 2 ** (retry - 1))
    assert rig.sample("alphavantage_throttle_events_total", function="GLOBAL_QUOTE") == 4


async def test_retries_are_bounded_by_total_time() -> None:
    """A retry whose sleep would overrun ``max_total_s`` is not made."""
    policy = RetryPolicy(max_attempts=50, base_delay_s=2.0, max_delay_s=8.0, max_total_s=20.0)
    rig = Rig([json_reply("global_quote.json", status=503)], retry=policy)

    with pytest.raises(AlphaVantageServerError) as raised:
        await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert sum(rig.time.sleeps) <= policy.max_total_s
    assert raised.value.attempts == len(rig.replay.requests) < 50
    assert raised.value.status == 503


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=15.0, throttle_min_delay_s=0.0)
    rng = random.Random(3)  # noqa: S311 - reproducible jitter, not cryptography
    for retry, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 15.0), (9, 15.0)]:
        delays = [policy.delay(retry, ReplyClass.SERVER_ERROR, rng) for _ in range(500)]
        assert all(0.0 <= d <= cap for d in delays)
        assert min(delays) < 0.1 * cap and max(delays) > 0.9 * cap  # the whole [0, cap] is used


async def test_exhausted_transport_errors_carry_no_httpx_exception() -> None:
    """The raised error has no __cause__/__context__: httpx's exception holds the URL with the key."""
    rig = Rig([httpx.ConnectError("refused")], retry=RetryPolicy(max_attempts=2))

    with pytest.raises(AlphaVantageTransportError) as raised:
        await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    assert raised.value.status is None


# --------------------------------------------------------------------------- the key never leaks
async def test_the_key_appears_in_no_log_exception_repr_metric_or_body(caplog: pytest.LogCaptureFixture) -> None:
    """httpx's request log, our structlog events, errors, reprs, metrics and bodies are all clean."""
    caplog.set_level(logging.DEBUG)
    echo = fixture("information_daily_cap.json").replace(b"<KEY>", KEY.encode())
    leaky_data = fixture("global_quote.json").replace(b'"IBM"', f'"IBM {KEY}"'.encode())
    rig = Rig(
        [
            httpx.ConnectError(f"cannot reach {BASE}?apikey={KEY}"),
            json_reply("information_free_burst.json"),
            httpx.Response(200, content=echo),
            httpx.Response(200, content=leaky_data),
        ]
    )

    with structlog.testing.capture_logs() as events:
        with pytest.raises(AlphaVantageDailyCapReached) as raised:
            await rig.client.call("GLOBAL_QUOTE", symbol="IBM")
        reply = await rig.client.call("GLOBAL_QUOTE", symbol="IBM")

    assert all(r.url.params["apikey"] == KEY for r in rig.replay.requests)  # it was sent
    assert "apikey=***" in caplog.text  # httpx did log the URL, redacted
    emitted = [
        caplog.text,
        repr(events),
        str(raised.value),
        repr(raised.value),
        raised.value.detail,
        repr(rig.client),
        repr(reply),
        reply.text,
        generate_latest(rig.registry).decode(),
    ]
    assert events  # the retries and the failure were logged
    for text in emitted:
        assert KEY not in text
    assert "API key as ***" in raised.value.detail


async def test_reserved_parameters_are_refused_without_echoing_them() -> None:
    rig = Rig([json_reply("global_quote.json")])

    with pytest.raises(ValueError) as raised:
        await rig.client.call("GLOBAL_QUOTE", symbol="IBM", apikey=KEY)

    assert KEY not in str(raised.value)
    with pytest.raises(ValueError):
        await rig.client.call("global quote")
    with pytest.raises(ValueError):
        await rig.client.call("GLOBAL_QUOTE", datatype="xml")
    assert rig.replay.requests == []


# --------------------------------------------------------------------------- construction
async def test_from_settings_uses_the_base_url_and_requires_a_key() -> None:
    replay = Replay([json_reply("global_quote.json")])
    settings = AlphaVantageSettings(api_key=SecretStr(KEY), base_url="http://127.0.0.1:8765/query")
    metrics = AlphaVantageMetrics(CollectorRegistry())

    async with AlphaVantageClient.from_settings(
        settings, FakeLimiter(), metrics, transport=httpx.MockTransport(replay)
    ) as client:
        await client.call("GLOBAL_QUOTE", symbol="IBM")

    assert replay.requests[0].url.host == "127.0.0.1"
    assert replay.requests[0].url.port == 8765
    with pytest.raises(ConfigError):
        AlphaVantageClient.from_settings(AlphaVantageSettings(), FakeLimiter(), metrics)


@pytest.mark.parametrize("url", ["ftp://av.test/query", "not a url", "http://av.test/query?apikey=x"])
def test_a_malformed_base_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        AlphaVantageClient(SecretStr(KEY), FakeLimiter(), AlphaVantageMetrics(CollectorRegistry()), base_url=url)


def test_http2_only_when_h2_is_importable() -> None:
    registry = CollectorRegistry()
    wanted = AlphaVantageClient(SecretStr(KEY), FakeLimiter(), AlphaVantageMetrics(registry))
    refused = AlphaVantageClient(
        SecretStr(KEY), FakeLimiter(), AlphaVantageMetrics(CollectorRegistry()), http=HttpOptions(http2=False)
    )

    assert wanted.http2 is h2_available()
    assert refused.http2 is False

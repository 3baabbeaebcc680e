"""The AlphaVantage REST client: pooled async HTTP, reply classification, bounded retries.

Every reply goes through ``inspect_reply`` (``av_replies``, reference §8) before anyone
reads its data, because AlphaVantage reports most failures as HTTP 200. Transient
classes are retried with exponential backoff and full jitter; permanent ones raise at
once. Every request, retries included, first takes a token from the injected limiter.

The API key travels as the ``apikey`` query parameter (AlphaVantage accepts nothing
else) and is redacted from everything this module emits: log lines (httpx's own request
log included), exception messages, reply bodies and reprs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import structlog
from pydantic import SecretStr

from quanticity.data_ingestion.av_metrics import AlphaVantageMetrics
from quanticity.data_ingestion.av_replies import MIN_LITERAL_SECRET, inspect_reply, install_log_redaction, redact
from quanticity.data_ingestion.errors import ERROR_FOR_CLASS, AlphaVantageError, ReplyClass
from quanticity.errors import ConfigError
from quanticity.settings.model import AlphaVantageSettings

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://www.alphavantage.co/query"
_FUNCTION_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class CallLimiter(Protocol):
    """Grants permission to send one request of ``function``; returns the seconds it waited."""

    async def acquire(self, function: str) -> float: ...


@dataclass(frozen=True)
class HttpOptions:
    """Timeouts and connection pool of the client (seconds and counts)."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # a 20k-contract chain is several MB
    write_timeout_s: float = 10.0
    pool_timeout_s: float = 5.0
    max_connections: int = 20
    max_keepalive_connections: int = 10
    keepalive_expiry_s: float = 30.0
    http2: bool = True  # used only when the h2 package is importable; ALPN falls back to 1.1


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient faults: exponential backoff with full jitter.

    The n-th retry sleeps ``uniform(0, min(max_delay_s, base_delay_s * 2**(n-1)))``, at
    least ``throttle_min_delay_s`` after a throttle (AlphaVantage's quota clears within
    seconds, so an immediate retry only earns another throttle).
    """

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 15.0
    max_total_s: float = 60.0
    throttle_min_delay_s: float = 1.0

    def delay(self, retry: int, reply_class: ReplyClass, rng: random.Random) -> float:
        """The sleep before retry number ``retry`` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        delay = rng.uniform(0.0, cap)
        return max(delay, self.throttle_min_delay_s) if reply_class is ReplyClass.THROTTLED else delay


@dataclass(frozen=True, slots=True)
class AvReply:
    """A successful reply (data, or an empty result).

    Attributes:
        function: the ``function`` requested.
        params: the other query parameters as sent, without the key.
        reply_class: ``OK`` or ``EMPTY``.
        status: HTTP status.
        content_type: the ``Content-Type`` header.
        body: the raw body (for CSV, and for archiving); the key never appears in it.
        data: the parsed JSON document, ``None`` for CSV.
        data_key: the top-level key holding the rows (JSON only).
        attempts: requests sent, retries included.
        waited_s: time spent waiting for rate-limiter tokens.
        latency_s: time of the successful request.
    """

    function: str
    params: Mapping[str, str]
    reply_class: ReplyClass
    status: int
    content_type: str
    body: bytes = field(repr=False)
    data: Any = field(repr=False)
    data_key: str | None
    attempts: int
    waited_s: float
    latency_s: float

    @property
    def datatype(self) -> Literal["json", "csv"]:
        """The format requested."""
        return "csv" if self.params.get("datatype") == "csv" else "json"

    @property
    def text(self) -> str:
        """The body as text (the CSV document for ``datatype=csv``)."""
        return self.body.decode("utf-8", "replace")

    @property
    def is_empty(self) -> bool:
        """True when the function answered with no rows."""
        return self.reply_class is ReplyClass.EMPTY


def h2_available() -> bool:
    """True when the ``h2`` package (httpx's HTTP/2 support) is importable."""
    return importlib.util.find_spec("h2") is not None


class AlphaVantageClient:
    """Async AlphaVantage client over one pooled ``httpx.AsyncClient``.

    Args:
        api_key: the key, sent as ``apikey`` and redacted everywhere else.
        limiter: grants each request (``RateLimiter`` in production).
        metrics: the client's metrics.
        base_url: the ``/query`` URL of AlphaVantage, the simulator or a recording server.
        http: timeouts and pool sizes.
        retry: retry bounds.
        transport: replaces the network (``httpx.MockTransport`` in tests).
        sleep: waits between retries (tests pass a fake that returns at once).
        clock: monotonic seconds, for latency and the total retry budget.
        rng: source of the backoff jitter.

    Raises:
        ConfigError: ``base_url`` is not an http(s) URL.
    """

    def __init__(
        self,
        api_key: SecretStr,
        limiter: CallLimiter,
        metrics: AlphaVantageMetrics,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: HttpOptions = HttpOptions(),  # noqa: B008 - frozen dataclass, safe as a shared default
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a shared default
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host or url.query:
            raise ConfigError([("settings", "alphavantage.base_url", "expected an http(s) URL without a query")])
        self.base_url = base_url
        self.retry = retry
        self.metrics = metrics
        self._key = api_key.get_secret_value()
        self._key_bytes = self._key.encode() if len(self._key) >= MIN_LITERAL_SECRET else b""
        self._limiter = limiter
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not cryptography
        self.http2 = http.http2 and h2_available()
        install_log_redaction()
        self._http = httpx.AsyncClient(
            http2=self.http2,
            transport=transport,
            timeout=httpx.Timeout(
                connect=http.connect_timeout_s,
                read=http.read_timeout_s,
                write=http.write_timeout_s,
                pool=http.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=http.max_connections,
                max_keepalive_connections=http.max_keepalive_connections,
                keepalive_expiry=http.keepalive_expiry_s,
            ),
            headers={"User-Agent": "quanticity-alphavantage/1"},
        )

    @classmethod
    def from_settings(
        cls, settings: AlphaVantageSettings, limiter: CallLimiter, metrics: AlphaVantageMetrics, **options: Any
    ) -> AlphaVantageClient:
        """Build a client from the ``alphavantage`` settings section.

        Raises:
            ConfigError: no API key is configured, or the base URL is malformed.
        """
        if settings.api_key is None or not settings.api_key.get_secret_value():
            raise ConfigError([("settings", "alphavantage.api_key", "is not set (the simulator accepts any key)")])
        return cls(settings.api_key, limiter, metrics, base_url=settings.base_url, **options)

    def __repr__(self) -> str:
        return f"AlphaVantageClient(base_url={self.base_url!r}, http2={self.http2})"

    async def __aenter__(self) -> AlphaVantageClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def call(self, function: str, **params: str) -> AvReply:
        """Request ``function`` with ``params`` and return its data.

        Args:
            function: an AlphaVantage function, e.g. ``REALTIME_OPTIONS``.
            **params: query parameters as strings; ``datatype="csv"`` returns the CSV body.

        Returns:
            The reply (``OK`` or ``EMPTY``).

        Raises:
            AlphaVantageError: a subclass per reply class (see ``quanticity.data_ingestion.errors``);
                transient ones only after the retry budget is spent.
            ValueError: a malformed function name, or ``apikey``/``function`` among ``params``.
            RedisUnavailableError: the rate limiter cannot reach Redis (raised by the limiter).
        """
        if not _FUNCTION_NAME.match(function):
            raise ValueError("function must be an upper-case AlphaVantage function name")
        if "apikey" in params or "function" in params:
            raise ValueError("pass the function positionally; the client adds the key itself")
        datatype = params.get("datatype", "json")
        if datatype not in ("json", "csv"):
            raise ValueError("datatype must be 'json' or 'csv'")
        started = self._clock()
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            waited += await self._limiter.acquire(function)
            outcome = await self._attempt(function, params, datatype, attempt, waited)
            if isinstance(outcome, AvReply):
                return outcome
            retry_class = outcome.reply_class
            delay = self.retry.delay(attempt, retry_class, self._rng) if outcome.retryable else 0.0
            if (
                not outcome.retryable
                or attempt >= self.retry.max_attempts
                or self._clock() - started + delay > self.retry.max_total_s
            ):
                log.warning(
                    "alphavantage.call_failed",
                    function=function,
                    params=dict(params),
                    reply_class=retry_class.value,
                    attempts=attempt,
                    detail=outcome.detail,
                )
                # Raised here, outside any except block, so no httpx exception (whose request
                # holds the full URL with the key) rides along as __context__.
                raise outcome
            self.metrics.retries.labels(function, retry_class.value).inc()
            log.info(
                "alphavantage.retry",
                function=function,
                reply_class=retry_class.value,
                attempt=attempt,
                delay_s=round(delay, 3),
                detail=outcome.detail,
            )
            await self._sleep(delay)

    async def _attempt(
        self, function: str, params: Mapping[str, str], datatype: str, attempt: int, waited: float
    ) -> AvReply | AlphaVantageError:
        query = {"function": function, **params, "apikey": self._key}
        sent = self._clock()
        try:
            response = await self._http.get(self.base_url, params=query)
        except httpx.TimeoutException as exc:
            return self._failed(function, ReplyClass.TRANSPORT_ERROR, f"timeout ({type(exc).__name__})", None, attempt)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            detail = f"{type(exc).__name__}: {redact(str(exc), self._key)}"
            return self._failed(function, ReplyClass.TRANSPORT_ERROR, detail, None, attempt)
        latency = self._clock() - sent
        self.metrics.latency_ms.labels(function).observe(latency * 1000.0)
        body = response.content
        if self._key_bytes and self._key_bytes in body:
            body = body.replace(self._key_bytes, b"***")
        content_type = response.headers.get("content-type", "")
        verdict = inspect_reply(function, response.status_code, content_type, body, datatype=datatype)
        if not verdict.reply_class.is_success:
            return self._failed(function, verdict.reply_class, verdict.detail, response.status_code, attempt)
        self.metrics.calls.labels(function, verdict.reply_class.value).inc()
        return AvReply(
            function=function,
            params=dict(params),
            reply_class=verdict.reply_class,
            status=response.status_code,
            content_type=content_type,
            body=body,
            data=verdict.payload,
            data_key=verdict.data_key,
            attempts=attempt,
            waited_s=waited,
            latency_s=latency,
        )

    def _failed(
        self, function: str, reply_class: ReplyClass, detail: str, status: int | None, attempt: int
    ) -> AlphaVantageError:
        self.metrics.calls.labels(function, reply_class.value).inc()
        if reply_class is ReplyClass.THROTTLED:
            self.metrics.throttle_events.labels(function).inc()
        error_type = ERROR_FOR_CLASS[reply_class]
        return error_type(function, redact(detail, self._key), status=status, attempts=attempt)

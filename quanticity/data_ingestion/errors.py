"""Reply classes of AlphaVantage and the exceptions the client raises for them.

AlphaVantage reports most failures as HTTP 200 with a JSON envelope, so the client sorts
every reply into a ``ReplyClass`` (reference §8) and raises the matching exception::

    QuanticityError
    └── AlphaVantageError                 function, reply_class, detail, status, attempts
        ├── AlphaVantageBadRequest        "Invalid API call": a bad parameter or an unknown symbol
        ├── AlphaVantageUnknownFunction   "This API function (…) does not exist."
        ├── AlphaVantageInvalidApiKey     missing/invalid key, or the demo key off its examples
        ├── AlphaVantageNotEntitled       premium-only endpoint or an artificial sample payload
        ├── AlphaVantageDailyCapReached   the free key's 25 requests/day are spent
        ├── AlphaVantageUnexpectedPayload JSON without the data key this function must carry
        └── AlphaVantageTransientError    retried with backoff; raised once the retries are spent
            ├── AlphaVantageThrottled     per-second/per-minute quota message under Note/Information
            ├── AlphaVantageServerError   HTTP 5xx, an HTML page, a body that is not (whole) JSON
            └── AlphaVantageTransportError  timeout, refused or dropped connection

Every message is redacted before it gets here: no exception ever holds the API key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from quanticity.errors import QuanticityError


class ReplyClass(StrEnum):
    """What a reply (or a failed attempt) means; the value is the ``outcome`` metric label."""

    OK = "ok"
    EMPTY = "empty"  # a success with no rows: {"Global Quote": {}}, "data": [] …
    BAD_REQUEST = "bad_request"
    UNKNOWN_FUNCTION = "unknown_function"
    INVALID_API_KEY = "invalid_api_key"
    NOT_ENTITLED = "not_entitled"
    DAILY_CAP = "daily_cap"
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    UNEXPECTED_PAYLOAD = "unexpected_payload"
    TRANSPORT_ERROR = "transport_error"  # never a reply: the request got no answer

    @property
    def is_success(self) -> bool:
        """True for replies that carry data (possibly none)."""
        return self in (ReplyClass.OK, ReplyClass.EMPTY)


class AlphaVantageError(QuanticityError):
    """A request to AlphaVantage that did not yield data.

    Attributes:
        function: the AlphaVantage ``function`` requested.
        detail: AlphaVantage's own text (redacted) or a description of the fault.
        status: the HTTP status of the last reply, ``None`` when none arrived.
        attempts: how many requests were sent before giving up.
        reply_class: the class of the last reply.
        retryable: whether the client retries this class.
    """

    reply_class: ClassVar[ReplyClass] = ReplyClass.BAD_REQUEST
    retryable: ClassVar[bool] = False
    summary: ClassVar[str] = "request failed"
    default_action: ClassVar[str | None] = None

    def __init__(self, function: str, detail: str, *, status: int | None = None, attempts: int = 1) -> None:
        self.function = function
        self.detail = detail
        self.status = status
        self.attempts = attempts
        http = f", HTTP {status}" if status is not None else ""
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(
            f"AlphaVantage {function}: {self.summary} ({self.reply_class.value}{http}, {tries}): {detail}",
            operator_action=self.default_action,
        )


class AlphaVantageBadRequest(AlphaVantageError):
    """AlphaVantage rejected the parameters (its "Invalid API call" text), or HTTP 4xx."""

    reply_class = ReplyClass.BAD_REQUEST
    summary = "bad request"


class AlphaVantageUnknownFunction(AlphaVantageError):
    """The ``function`` does not exist on AlphaVantage."""

    reply_class = ReplyClass.UNKNOWN_FUNCTION
    summary = "unknown function"
    default_action = "fix the function name in config/alpha_vantage.yaml (reference §2-§7 lists the valid ones)"


class AlphaVantageInvalidApiKey(AlphaVantageError):
    """The key is missing or invalid, or the demo key was used beyond the documented examples."""

    reply_class = ReplyClass.INVALID_API_KEY
    summary = "API key rejected"
    default_action = (
        "set a valid key in QUANTICITY_ALPHAVANTAGE__API_KEY (the demo key serves documentation examples only)"
    )


class AlphaVantageNotEntitled(AlphaVantageError):
    """The plan lacks this premium function or entitlement (including AV's artificial samples)."""

    reply_class = ReplyClass.NOT_ENTITLED
    summary = "not entitled (premium endpoint)"
    default_action = (
        "subscribe the key to a plan or add-on that includes this function "
        "(REALTIME_OPTIONS needs the 600 or 1200 req/min plan), or remove it from config/alpha_vantage.yaml"
    )


class AlphaVantageDailyCapReached(AlphaVantageError):
    """The free key's daily allowance (25 requests) is used up; retrying before the reset is futile."""

    reply_class = ReplyClass.DAILY_CAP
    summary = "daily request cap reached"
    default_action = "wait for AlphaVantage's daily reset or configure a premium key"


class AlphaVantageUnexpectedPayload(AlphaVantageError):
    """A JSON reply without the data key its function must carry."""

    reply_class = ReplyClass.UNEXPECTED_PAYLOAD
    summary = "unexpected payload"


class AlphaVantageTransientError(AlphaVantageError):
    """A fault that may clear by itself; the client retries it with backoff before raising."""

    retryable = True
    summary = "transient fault"


class AlphaVantageThrottled(AlphaVantageTransientError):
    """AlphaVantage said the per-second or per-minute quota was exceeded."""

    reply_class = ReplyClass.THROTTLED
    summary = "throttled"
    default_action = (
        "if this repeats, lower alphavantage.cadence.ceiling_calls_per_min / per_function_qps "
        "(config/alpha_vantage.yaml) below the plan's per-minute quota, or check for another "
        "consumer of the same key"
    )


class AlphaVantageServerError(AlphaVantageTransientError):
    """HTTP 5xx, an HTML error page, or a body that is not complete JSON."""

    reply_class = ReplyClass.SERVER_ERROR
    summary = "server error"


class AlphaVantageTransportError(AlphaVantageTransientError):
    """No reply: a timeout, a refused connection or a dropped one."""

    reply_class = ReplyClass.TRANSPORT_ERROR
    summary = "no reply"


ERROR_FOR_CLASS: dict[ReplyClass, type[AlphaVantageError]] = {
    cls.reply_class: cls
    for cls in (
        AlphaVantageBadRequest,
        AlphaVantageUnknownFunction,
        AlphaVantageInvalidApiKey,
        AlphaVantageNotEntitled,
        AlphaVantageDailyCapReached,
        AlphaVantageUnexpectedPayload,
        AlphaVantageThrottled,
        AlphaVantageServerError,
        AlphaVantageTransportError,
    )
}
"""The exception raised for each failing reply class."""

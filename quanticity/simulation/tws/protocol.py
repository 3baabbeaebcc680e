"""The TWS socket protocol: framing, field encoding, and reading client requests.

A frame is a 4-byte big-endian length and a payload of text fields, each terminated by
NUL, the last one included (tws.md §1). The connection opens with the raw bytes
``API\\0`` followed by one length-prefixed version range such as ``v157..176``, which
carries no NUL. Outgoing values are encoded the way TWS encodes them: booleans as
``1``/``0``, unset numbers as ``''``, floats with ``repr``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from quanticity.simulation.errors import SimulationRequestError

__all__ = [
    "MAX_FRAME",
    "UNSET_DOUBLE",
    "UNSET_DOUBLE_TEXT",
    "UNSET_INTEGER",
    "ContractQuery",
    "Field",
    "FieldReader",
    "MalformedMessage",
    "encode_fields",
    "frame",
    "negotiate_version",
    "split_payload",
]

UNSET_INTEGER = 2147483647
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"  # how real TWS writes an unset double
MAX_FRAME = 16 * 1024 * 1024  # a larger length prefix means a broken or hostile peer

Field = str | int | float | Decimal | bool | None

_VERSION = re.compile(r"^v(\d+)(?:\.\.(\d+))?(?:\s.*)?$")


class MalformedMessage(SimulationRequestError):
    """A client message whose fields do not parse.

    Attributes:
        msg_id: the message id (field 0), or -1 when even that is unreadable.
        fields: the raw fields as received.
        req_id: the request id if it could be read (for the error reply), else -1.
    """

    def __init__(self, msg_id: int, fields: Sequence[str], reason: str, req_id: int = -1) -> None:
        self.msg_id = msg_id
        self.fields = list(fields)
        self.req_id = req_id
        super().__init__(f"message {msg_id}: {reason}; fields {self.fields!r}")


def _text(value: Field) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == UNSET_DOUBLE:
            return UNSET_DOUBLE_TEXT
        if value != value:  # NaN: TWS never sends it; an empty field is the safe "no value"
            return ""
        return repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return value


def encode_fields(fields: Sequence[Field]) -> str:
    """The payload text of ``fields``: each value encoded and NUL-terminated."""
    return "".join(_text(f) + "\0" for f in fields)


def frame(fields: Sequence[Field]) -> bytes:
    """One length-prefixed frame carrying ``fields``."""
    payload = encode_fields(fields).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


def split_payload(payload: bytes) -> list[str]:
    """The fields of a received payload (the empty piece after the last NUL is dropped)."""
    parts = payload.decode("utf-8", errors="backslashreplace").split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def negotiate_version(text: str, server_max: int) -> int:
    """The server version to answer a ``vMIN..MAX[ options]`` greeting with.

    Raises:
        SimulationRequestError: the greeting is malformed or the ranges do not overlap.
    """
    match = _VERSION.match(text.strip())
    if match is None:
        raise SimulationRequestError(f"malformed API version greeting {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or match.group(1))
    version = min(high, server_max)
    if version < low or version < 157:
        raise SimulationRequestError(f"client versions {low}..{high} do not overlap server ..{server_max}")
    return version


@dataclass(frozen=True, slots=True)
class ContractQuery:
    """The 12 contract fields a client sends (C12), as text except the numbers.

    Attributes:
        con_id: 0 when unknown.
        strike: 0.0 when not given.
    """

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    expiry: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""

    def describe(self) -> str:
        """A short human-readable form for logs and error texts."""
        parts = [self.symbol or f"conId {self.con_id}", self.sec_type, self.expiry, self.right]
        if self.strike:
            parts.append(f"{self.strike:g}")
        return " ".join(p for p in parts if p) + (f"@{self.exchange}" if self.exchange else "")


class FieldReader:
    """Reads a client message field by field, raising ``MalformedMessage`` on bad input.

    Args:
        fields: the message's fields, field 0 being the message id.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        try:
            self.msg_id = int(self.fields[0])
        except (IndexError, ValueError):
            raise MalformedMessage(-1, self.fields, "unreadable message id") from None
        self.pos = 1
        self.req_id = -1

    def _bad(self, what: str) -> MalformedMessage:
        return MalformedMessage(self.msg_id, self.fields, f"field {self.pos - 1}: {what}", self.req_id)

    def _next(self) -> str:
        if self.pos >= len(self.fields):
            self.pos += 1
            raise self._bad("missing")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def skip(self, n: int = 1) -> None:
        """Skip ``n`` fields (a version field, deprecated slots)."""
        for _ in range(n):
            self._next()

    def text(self) -> str:
        """The next field as text."""
        return self._next()

    def integer(self, default: int = 0) -> int:
        """The next field as an integer; ``''`` gives ``default``."""
        text = self._next()
        if text == "":
            return default
        try:
            return int(text)
        except ValueError:
            try:  # some clients send integral values as "1.0"
                value = float(text)
            except ValueError:
                raise self._bad(f"not an integer: {text!r}") from None
            if value != int(value):
                raise self._bad(f"not an integer: {text!r}") from None
            return int(value)

    def req(self) -> int:
        """The next field as a request id, remembered for error replies."""
        self.req_id = self.integer(-1)
        return self.req_id

    def number(self, default: float | None = None) -> float | None:
        """The next field as a float; ``''`` and the unset sentinel give ``default``."""
        text = self._next()
        if text == "":
            return default
        try:
            value = float(text)
        except ValueError:
            raise self._bad(f"not a number: {text!r}") from None
        return default if value >= UNSET_DOUBLE else value

    def decimal(self) -> Decimal | None:
        """The next field as a Decimal (quantities, prices on order paths); ``''``/unset give None."""
        text = self._next()
        if text == "":
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise self._bad(f"not a decimal: {text!r}") from None
        if not value.is_finite() or value >= Decimal(UNSET_DOUBLE_TEXT):
            return None
        return value

    def flag(self) -> bool:
        """The next field as a boolean (``1``/``0``/``''``)."""
        return self.integer(0) != 0

    def contract(self) -> ContractQuery:
        """The next 12 fields as a contract (tws.md §1, C12)."""
        con_id = self.integer(0)
        symbol, sec_type, expiry = self.text().upper(), self.text().upper(), self.text()
        strike = self.number(0.0) or 0.0
        right = self.text().upper()[:1]  # CALL/PUT and C/P are both accepted by TWS
        multiplier, exchange, primary = self.text(), self.text().upper(), self.text().upper()
        currency, local_symbol, trading_class = self.text().upper(), self.text(), self.text().upper()
        return ContractQuery(
            con_id,
            symbol,
            sec_type,
            expiry.split(" ")[0],
            strike,
            right,
            multiplier,
            exchange,
            primary,
            currency,
            local_symbol,
            trading_class,
        )

    def rest(self) -> list[str]:
        """All fields not read yet."""
        out = self.fields[self.pos :]
        self.pos = len(self.fields)
        return out

"""One parsed ``/query`` request and the parameter checks every function shares.

A bad parameter ends the request with ``Rejection`` carrying the exact payload the real
service would send (usually ``Invalid API call ... for <FUNCTION>.``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from quanticity.errors import QuanticityError
from quanticity.simulation.alphavantage import messages
from quanticity.simulation.alphavantage.config import KeyPlan, SimulatorConfig
from quanticity.simulation.alphavantage.faults import ActiveFaults
from quanticity.simulation.calendar import SESSION_SECONDS, et_datetime
from quanticity.simulation.market import SimulatedMarket

__all__ = ["Query", "Rejection", "Reply"]

Reply = dict[str, object] | str  # a JSON payload, or a CSV document
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Rejection(QuanticityError):
    """A request answered with an AlphaVantage error payload instead of data.

    Attributes:
        payload: the JSON object to send (HTTP 200).
    """

    def __init__(self, payload: dict[str, object]) -> None:
        self.payload = payload
        super().__init__(f"request rejected: {next(iter(payload))}")


@dataclass(frozen=True, slots=True)
class Query:
    """A request that passed authentication, the quota and the reply-replacing faults.

    Attributes:
        function: upper-case function name.
        params: query parameters as sent.
        plan: the API key's plan.
        now: simulator clock at arrival.
        faults: faults firing on this request.
        market: the simulated market.
        config: the simulator configuration.
    """

    function: str
    params: Mapping[str, str]
    plan: KeyPlan
    now: datetime
    faults: ActiveFaults
    market: SimulatedMarket
    config: SimulatorConfig

    def invalid(self) -> Rejection:
        """The ``Invalid API call`` rejection for this function."""
        return Rejection(messages.invalid_call(self.function))

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter, or ``default`` when absent or empty."""
        value = self.params.get(name)
        return value if value else default

    def require(self, name: str) -> str:
        """A required parameter."""
        value = self.get(name)
        if value is None:
            raise self.invalid()
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        """A parameter restricted to ``allowed`` (case-insensitive); ``default`` when absent."""
        value = self.get(name, default)
        if value is None or value.lower() not in allowed:
            raise self.invalid()
        return value.lower()

    def flag(self, name: str, default: bool) -> bool:
        """A ``true``/``false`` parameter."""
        return self.choice(name, ("true", "false"), "true" if default else "false") == "true"

    def integer(self, name: str, default: int | None = None, low: int = 1, high: int = 100_000) -> int:
        """A positive integer parameter in ``[low, high]``."""
        raw = self.get(name)
        if raw is None:
            if default is None:
                raise self.invalid()
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.invalid() from None
        if not low <= value <= high:
            raise self.invalid()
        return value

    def number(self, name: str, default: float) -> float:
        """A positive number parameter."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self.invalid() from None
        if not value > 0:
            raise self.invalid()
        return value

    @property
    def csv(self) -> bool:
        """``datatype=csv`` (``json`` is the default)."""
        return self.choice("datatype", ("json", "csv"), "json") == "csv"

    def symbol(self) -> str:
        """The required ``symbol``, upper-cased."""
        return self.require("symbol").upper()

    def equity(self) -> str:
        """A listed stock or ETF symbol; indices and unknown symbols are invalid calls."""
        symbol = self.symbol()
        if not self.market.is_listed(symbol) or self.market.spec(symbol).kind not in ("stock", "etf"):
            raise self.invalid()
        return symbol

    def month(self) -> date | None:
        """``month=YYYY-MM`` as the first day of the month."""
        raw = self.get("month")
        if raw is None:
            return None
        if not _MONTH.match(raw):
            raise self.invalid()
        return date(int(raw[:4]), int(raw[5:]), 1)

    def day(self, name: str) -> date | None:
        """A ``YYYY-MM-DD`` parameter."""
        raw = self.get(name)
        if raw is None:
            return None
        if not _DATE.match(raw):
            raise self.invalid()
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise self.invalid() from None

    def require_premium(self) -> None:
        """Premium-only functions answer free keys with the premium-endpoint message."""
        if not self.plan.has("premium"):
            raise Rejection(messages.premium_endpoint())

    def cutoff(self) -> tuple[datetime, bool]:
        """The newest instant the reply may show, and whether it is the delayed feed.

        ``entitlement=realtime`` shows data up to now and ``delayed`` up to 15 minutes
        ago, each only for keys holding that entitlement (a realtime key may ask for the
        delayed feed). Without ``entitlement`` US data "updates at end of trading day"
        (alphavantage.md §1): up to the end of the last finished session.
        """
        wanted = self.get("entitlement")
        if wanted is None:
            k, s = self.market.calendar.session_second(self.now)
            if s == SESSION_SECONDS:
                return self.now, False
            return et_datetime(self.market.calendar.day(k - 1), time(20)), False
        wanted = wanted.lower()
        if wanted == "realtime" and self.plan.has("realtime"):
            return self.now, False
        if wanted == "delayed" and (self.plan.has("delayed") or self.plan.has("realtime")):
            return self.now.replace(microsecond=0) - timedelta(minutes=15), True
        if wanted in ("realtime", "delayed"):
            raise Rejection(messages.premium_endpoint())
        raise self.invalid()

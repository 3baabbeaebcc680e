"""Errors the simulated market raises.

::

    QuanticityError
    ├── MarketHorizonError        a date outside the span the market was built for
    └── SimulationRequestError    a request the market cannot answer (also a ValueError)
"""

from __future__ import annotations

from datetime import date

from quanticity.errors import QuanticityError

__all__ = ["MarketHorizonError", "SimulationRequestError"]


class MarketHorizonError(QuanticityError):
    """A date outside the span the simulated market was built for.

    Attributes:
        requested: the date asked for.
        first: the first date the market covers.
        last: the last date the market covers.
    """

    def __init__(self, requested: date, first: date, last: date) -> None:
        self.requested = requested
        self.first = first
        self.last = last
        super().__init__(
            f"simulated market covers {first.isoformat()}..{last.isoformat()}, not {requested.isoformat()}",
            operator_action="start the simulator with a start date nearer the requested period",
        )


class SimulationRequestError(QuanticityError, ValueError):
    """A request the simulated market cannot answer (bad interval, naive time, unknown series...)."""

"""Synthetic underlying quotes for the demo ingestion task (sim mode only).

A geometric random walk per symbol with a spread proportional to price. Deterministic
for a given seed, so tests can predict it.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

from quanticity.schemas import UnderlyingQuote, stable_id
from quanticity.settings.model import Mode

_START_PRICES = {"SPY": 600.0, "QQQ": 520.0, "IWM": 230.0, "SPX": 6000.0}
_ANNUAL_VOL = 0.18
_SECONDS_PER_YEAR = 252 * 6.5 * 3600


class DemoQuoteGenerator:
    """Produces one ``UnderlyingQuote`` per symbol per call.

    Args:
        symbols: tickers to quote.
        run_id: stamped on every record.
        mode: stamped on every record (the demo only runs in ``sim``).
        seed: random seed.
    """

    def __init__(self, symbols: list[str], run_id: str, mode: Mode = "sim", seed: int = 7) -> None:
        self.run_id = run_id
        self.mode: Mode = mode
        self._rng = random.Random(seed)  # noqa: S311 - market noise, not cryptography
        self._prices = {s: _START_PRICES.get(s, 100.0) for s in symbols}
        self._sequence = 0
        self._last: datetime | None = None

    def next_quotes(self, now: datetime) -> list[UnderlyingQuote]:
        """Advance the walk to ``now`` and quote every symbol."""
        dt = 1.0 if self._last is None else max((now - self._last).total_seconds(), 1e-3)
        self._last = now
        self._sequence += 1
        sigma = _ANNUAL_VOL * math.sqrt(dt / _SECONDS_PER_YEAR)
        quotes = []
        for symbol, price in self._prices.items():
            price *= math.exp(self._rng.gauss(-0.5 * sigma * sigma, sigma))
            self._prices[symbol] = price
            half_spread = max(round(price * 0.00002, 2), 0.01)
            bid, ask = round(price - half_spread, 2), round(price + half_spread, 2)
            quotes.append(
                UnderlyingQuote(
                    symbol=symbol,
                    bid=bid,
                    ask=ask,
                    last=round(price, 2),
                    bid_size=float(self._rng.randint(1, 50) * 100),
                    ask_size=float(self._rng.randint(1, 50) * 100),
                    volume=float(self._rng.randint(100, 5000)),
                    record_id=stable_id(self.run_id, symbol, self._sequence),
                    event_time=now,
                    ingest_time=now,
                    source="sim",
                    run_id=self.run_id,
                    mode=self.mode,
                )
            )
        return quotes

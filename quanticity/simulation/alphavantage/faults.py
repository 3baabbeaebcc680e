"""Fault injection for the AlphaVantage simulator.

Each request draws which configured faults fire (``FaultRule``: probability, every
n-th call, or clock windows). Draws come from one generator seeded by the config, so a
given sequence of requests meets the same faults in every run.

Faults that replace the whole reply win over one another in ``REPLACING`` order;
payload faults (empty chain, junk Greeks, empty quote, ``"."`` values) and delivery
faults (slow, truncated) combine with whatever reply is sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from quanticity.simulation.alphavantage.config import FaultKind, FaultRule, SimulatorConfig

__all__ = ["REPLACING", "ActiveFaults", "FaultInjector"]

REPLACING: tuple[FaultKind, ...] = ("http_503", "html_body", "empty_object", "throttle", "premium_only")


@dataclass(frozen=True, slots=True)
class ActiveFaults:
    """The faults that fire on one request.

    Attributes:
        rules: the firing rules by kind (the first configured rule of a kind wins).
        seed: per-request seed for the row-level draws of payload faults.
    """

    rules: dict[FaultKind, FaultRule]
    seed: int

    def __contains__(self, kind: object) -> bool:
        return kind in self.rules

    @property
    def replacement(self) -> FaultKind | None:
        """The reply-replacing fault to apply, if any."""
        return next((k for k in REPLACING if k in self.rules), None)

    def fraction(self, kind: FaultKind) -> float:
        """Share of eligible rows a payload fault touches."""
        return self.rules[kind].fraction

    def rng(self) -> np.random.Generator:
        """A generator for this request's row-level draws."""
        return np.random.default_rng(self.seed)


class FaultInjector:
    """Decides, request by request, which faults fire.

    Args:
        config: the simulator configuration (its ``faults`` and ``seed``).
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._rules = config.faults
        self._rng = np.random.default_rng(np.random.SeedSequence([config.seed % (1 << 32), 0xFA17]))
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self.fired: dict[str, dict[str, int]] = {}

    def draw(self, function: str, now: datetime) -> ActiveFaults:
        """The faults for one request of ``function`` at clock time ``now``."""
        rules = (*self._rules.get(function, ()), *self._rules.get("*", ()))
        with self._lock:
            n = self._calls.get(function, 0) + 1
            self._calls[function] = n
            seed = int(self._rng.integers(0, 1 << 62))
            active: dict[FaultKind, FaultRule] = {}
            for rule in rules:
                hit = self._rng.random() < rule.probability  # drawn for every rule: keeps the sequence stable
                hit |= rule.every_n is not None and n % rule.every_n == 0
                hit |= any(start <= now < end for start, end in rule.windows)
                if hit and rule.kind not in active:
                    active[rule.kind] = rule
                    counts = self.fired.setdefault(function, {})
                    counts[rule.kind] = counts.get(rule.kind, 0) + 1
            return ActiveFaults(active, seed)

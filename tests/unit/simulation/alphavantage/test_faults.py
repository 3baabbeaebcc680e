"""Tests of the simulator's fault injection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quanticity.simulation.alphavantage.config import FaultRule, SimulatorConfig
from quanticity.simulation.alphavantage.faults import FaultInjector

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _injector(seed: int = 5, **faults: tuple[FaultRule, ...]) -> FaultInjector:
    return FaultInjector(SimulatorConfig(keys={}, faults=faults, seed=seed))


def _kinds(injector: FaultInjector, function: str, n: int, now: datetime = T0) -> list[tuple[str, ...]]:
    return [tuple(injector.draw(function, now).rules) for _ in range(n)]


def test_probabilities_are_seeded() -> None:
    """Same seed, same request sequence, same faults; the rate follows the probability."""
    rule = (FaultRule("http_503", probability=0.3),)
    first = _kinds(_injector(GLOBAL_QUOTE=rule), "GLOBAL_QUOTE", 400)
    again = _kinds(_injector(GLOBAL_QUOTE=rule), "GLOBAL_QUOTE", 400)
    other = _kinds(_injector(seed=6, GLOBAL_QUOTE=rule), "GLOBAL_QUOTE", 400)
    assert first == again and first != other
    assert 80 < sum(1 for k in first if k) < 160


def test_every_n_and_windows() -> None:
    """every_n fires on calls n, 2n...; a window fires throughout and only inside it."""
    injector = _injector(
        CPI=(FaultRule("empty_object", every_n=3),),
        SMA=(FaultRule("html_body", windows=((T0, T0 + timedelta(minutes=5)),)),),
    )
    assert [bool(k) for k in _kinds(injector, "CPI", 6)] == [False, False, True, False, False, True]
    assert all(_kinds(injector, "SMA", 3, T0 + timedelta(minutes=1)))
    assert not any(_kinds(injector, "SMA", 3, T0 + timedelta(minutes=6)))


def test_wildcard_rules_apply_to_every_function_and_are_counted() -> None:
    """'*' rules fire for any function; the injector counts what fired per function."""
    injector = _injector(**{"*": (FaultRule("slow_response", probability=1.0, seconds=0.1),)})
    assert _kinds(injector, "MACD", 2) == [("slow_response",), ("slow_response",)]
    assert injector.fired == {"MACD": {"slow_response": 2}}


def test_replacement_priority() -> None:
    """A 503 wins over an HTML body and an empty object; payload faults never replace the reply."""
    injector = _injector(
        X=(
            FaultRule("empty_object", probability=1.0),
            FaultRule("http_503", probability=1.0),
            FaultRule("junk_greeks", probability=1.0),
        )
    )
    active = injector.draw("X", T0)
    assert active.replacement == "http_503" and "junk_greeks" in active
    payload_only = _injector(X=(FaultRule("empty_chain", probability=1.0),)).draw("X", T0)
    assert payload_only.replacement is None and "empty_chain" in payload_only

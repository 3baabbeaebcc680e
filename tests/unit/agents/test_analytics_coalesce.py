"""Per-key coalescing: leading edge at once, latest wins inside the window, keys independent."""

from __future__ import annotations

import asyncio
import time

import pytest

from quanticity.agents.analytics_coalesce import Coalescer


class Recorder:
    def __init__(self, hold_s: float = 0.0, fail_on: object = None) -> None:
        self.runs: list[tuple[str, object, float]] = []
        self.superseded: list[str] = []
        self.errors: list[tuple[str, BaseException]] = []
        self.hold_s = hold_s
        self.fail_on = fail_on

    async def run(self, key: str, value: object) -> None:
        self.runs.append((key, value, time.monotonic()))
        if value == self.fail_on:
            raise RuntimeError("boom")
        await asyncio.sleep(self.hold_s)

    def coalescer(self, window_s: float) -> Coalescer[str, object]:
        return Coalescer(
            window_s,
            self.run,
            on_superseded=self.superseded.append,
            on_error=lambda key, exc: self.errors.append((key, exc)),
        )


async def test_an_idle_key_runs_at_once() -> None:
    rec = Recorder()
    c = rec.coalescer(10.0)  # a long window must not delay the first value
    started = time.monotonic()
    c.submit("SPY", 1)
    await c.drain()
    assert [(k, v) for k, v, _ in rec.runs] == [("SPY", 1)]
    assert rec.runs[0][2] - started < 1.0


async def test_values_inside_the_window_coalesce_to_the_latest() -> None:
    rec = Recorder(hold_s=0.05)
    c = rec.coalescer(0.2)
    c.submit("SPY", 1)
    await asyncio.sleep(0.01)  # 1 is running
    for value in (2, 3, 4):
        c.submit("SPY", value)
    await c.drain()
    assert [v for _, v, _ in rec.runs] == [1, 4]
    assert rec.superseded == ["SPY", "SPY"]  # 2 and 3 never ran
    assert rec.runs[1][2] - rec.runs[0][2] >= 0.2 - 1e-3  # the second start waits for the window


async def test_keys_do_not_wait_for_each_other() -> None:
    rec = Recorder(hold_s=0.3)
    c = rec.coalescer(5.0)
    c.submit("SPY", 1)
    c.submit("QQQ", 1)
    await asyncio.sleep(0.1)
    assert {k for k, _, _ in rec.runs} == {"SPY", "QQQ"}
    await c.close()


async def test_a_failed_run_is_reported_and_the_key_carries_on() -> None:
    rec = Recorder(fail_on=1)
    c = rec.coalescer(0.05)
    c.submit("SPY", 1)
    await asyncio.sleep(0.01)
    c.submit("SPY", 2)
    await c.drain()
    assert [v for _, v, _ in rec.runs] == [1, 2]
    assert [(k, str(e)) for k, e in rec.errors] == [("SPY", "boom")]
    assert c.busy == 0


async def test_close_cancels_waiting_values() -> None:
    rec = Recorder()
    c = rec.coalescer(10.0)
    c.submit("SPY", 1)
    await c.drain()
    c.submit("SPY", 2)  # waits ~10 s for the window
    await asyncio.sleep(0.01)
    assert c.busy == 1
    await c.close()
    assert c.busy == 0
    assert [v for _, v, _ in rec.runs] == [1]


@pytest.mark.parametrize("window_s", [0.0, 0.05])
async def test_every_submitted_key_eventually_runs_its_latest_value(window_s: float) -> None:
    rec = Recorder()
    c = rec.coalescer(window_s)
    for i in range(20):
        c.submit(f"S{i % 4}", i)
    await c.drain()
    last = {key: value for key, value, _ in rec.runs}
    assert last == {"S0": 16, "S1": 17, "S2": 18, "S3": 19}


async def test_idle_keys_are_forgotten() -> None:
    rec = Recorder()
    c = rec.coalescer(0.0)
    for i in range(999):
        c.submit(f"K{i}", i)
    await c.drain()
    assert c.keys == 999
    c.submit("last", 1)  # the 1000th submit sweeps the idle keys first
    assert c.keys == 1
    await c.drain()

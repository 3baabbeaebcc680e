"""The readiness probes never eat a cancellation (a Ctrl-C during start-up polls them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from quanticity.runtime.probes import broker_answers, tcp_answers
from quanticity.runtime.process import free_loopback_port


async def _cancel_after_each_pass(probe: Callable[[], Coroutine[Any, Any, bool]], passes: int) -> list[int]:
    """Cancel ``probe`` after 0..passes-1 loop passes; return the pass counts where it still returned."""
    swallowed = []
    for k in range(passes):
        task = asyncio.create_task(probe())
        for _ in range(k):
            await asyncio.sleep(0)
        if not task.cancel():  # it had already finished: nothing to lose
            continue
        try:
            await task
        except asyncio.CancelledError:
            continue
        swallowed.append(k)
    return swallowed


async def test_tcp_probe_of_a_refusing_port_passes_every_cancellation_on() -> None:
    # The refused connect completes within a few loop passes; a cancel landing in the pass
    # where it completes was turned into "False" by asyncio.wait_for on Python 3.11.
    port = free_loopback_port()
    assert await _cancel_after_each_pass(lambda: tcp_answers("127.0.0.1", port), 12) == []


async def test_broker_probe_of_a_refusing_port_passes_every_cancellation_on() -> None:
    port = free_loopback_port()
    assert await _cancel_after_each_pass(lambda: broker_answers(f"127.0.0.1:{port}"), 12) == []

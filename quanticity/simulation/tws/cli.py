"""``quanticity sim tws``: serve the TWS simulator until Ctrl-C or SIGTERM.

Register it on the ``sim`` group with ``sim.add_command(tws_command)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime

import click

from quanticity.simulation.instruments import DEFAULT_UNIVERSE
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.server import run_forever

__all__ = ["tws_command"]


def _symbols(text: str | None) -> list[str]:
    return [s.strip().upper() for s in (text or "").split(",") if s.strip()]


async def _serve_until_signalled(
    host: str, port: int, config: TwsSimConfig, market: SimulatedMarket, control_port: int | None
) -> None:
    """Run the simulator; SIGINT/SIGTERM cancel it so that it stops cleanly."""
    task = asyncio.create_task(run_forever(host, port, config, market, control_port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # signal handlers are POSIX-only
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@click.command("tws")
@click.option("--port", type=int, default=7497, show_default=True, help="API port (7497: TWS paper)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="seed of the simulated market")
@click.option(
    "--symbols",
    default="DIA",
    show_default=True,
    help="comma-separated extra symbols (the default universe is always listed)",
)
@click.option("--account", default="DU1234567", show_default=True, help="managed account code")
@click.option("--tick-interval-ms", type=int, default=250, show_default=True, help="market-data tick interval")
@click.option("--control-port", type=int, default=None, help="also serve the fault-control HTTP API on this port")
@click.option("--not-entitled", default=None, help="comma-separated symbols without live market data")
def tws_command(
    port: int,
    host: str,
    seed: int,
    symbols: str | None,
    account: str,
    tick_interval_ms: int,
    control_port: int | None,
    not_entitled: str | None,
) -> None:
    """Serve the TWS-protocol simulator (connect ib_insync to it) until Ctrl-C."""
    if tick_interval_ms <= 0:
        raise click.BadParameter("must be positive", param_hint="--tick-interval-ms")
    try:
        config = TwsSimConfig(
            accounts=(account,),
            tick_interval_s=tick_interval_ms / 1000.0,
            not_entitled=frozenset(_symbols(not_entitled)),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    market = SimulatedMarket(seed, datetime.now(UTC), _symbols(symbols) or list(DEFAULT_UNIVERSE))
    control = f"; fault control on http://127.0.0.1:{control_port}" if control_port is not None else ""
    click.echo(f"TWS simulator on {host}:{port} (account {account}, seed {seed}){control}; Ctrl-C stops it")
    try:
        asyncio.run(_serve_until_signalled(host, port, config, market, control_port))
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo("stopped")

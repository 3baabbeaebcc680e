"""Run roles in one process: embedded servers if needed, topics, monitors, Faust apps.

``quanticity up`` runs every enabled role; ``quanticity worker --role NAME`` runs one.
Start order: metrics endpoint → embedded broker/Redis (when no URL is configured) →
topics → monitors → role apps. Stop order is the reverse. SIGINT/SIGTERM stop cleanly;
SIGHUP reloads the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

from quanticity.app.context import AlphaVantageEndpoint, RoleContext
from quanticity.app.factory import build_app
from quanticity.app.monitors import ConnectionMonitor, broker_monitor, redis_monitor
from quanticity.app.roles import RoleSpec
from quanticity.errors import BrokerUnavailableError
from quanticity.observability.gc_pauses import freeze_long_lived
from quanticity.observability.http import MetricsServer
from quanticity.observability.logging import set_level
from quanticity.observability.metrics import Metrics
from quanticity.runtime.embedded import EmbeddedRuntime
from quanticity.runtime.probes import http_answers, tcp_answers
from quanticity.runtime.process import ChildProcess, check_port_free, free_loopback_port
from quanticity.settings.model import Settings
from quanticity.settings.reload import SettingsHolder
from quanticity.topology.admin import ensure_topics
from quanticity.topology.registry import TopicRegistry

log = structlog.get_logger(__name__)

#: Roles that talk to TWS; in sim mode the platform starts the TWS simulator for them.
IBKR_ROLES = frozenset({"ingest-ibkr", "execution"})

#: The simulator accepts exactly this key; it is not a secret (the simulator is on loopback).
_SIM_KEY = "quanticity-local-simulator"


@dataclass
class Platform:
    """One process of the platform.

    Args:
        holder: live settings (reloaded on SIGHUP).
        metrics: the process's metrics.
        roles: roles to run in this process.
        banner: where the "where things are" lines go.
    """

    holder: SettingsHolder
    metrics: Metrics
    roles: list[RoleSpec]
    banner: TextIO = field(default_factory=lambda: sys.stdout)
    runtime: EmbeddedRuntime | None = None
    ctx: RoleContext | None = None
    apps: list[tuple[RoleSpec, Any]] = field(default_factory=list)
    monitors: list[ConnectionMonitor] = field(default_factory=list)
    server: MetricsServer | None = None
    av_simulator: ChildProcess | None = None
    tws_simulator: ChildProcess | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    _apps_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def settings(self) -> Settings:
        return self.holder.current

    async def start(self) -> None:
        """Bring everything up; on any failure, stop what already started and re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        obs = s.observability
        self.metrics.gc.install()
        if obs.metrics_port:
            self.server = MetricsServer(self.metrics, obs.metrics_host, obs.metrics_port, obs.textfile_dir)
            self.server.start()
        self.metrics.redis_connected.set(0)
        self.metrics.broker_connected.set(0)
        bootstrap, redis_url = s.kafka.bootstrap, s.redis.url
        if bootstrap is None or redis_url is None:
            self.runtime = EmbeddedRuntime(
                s.embedded,
                self.metrics,
                with_broker=bootstrap is None,
                with_redis=redis_url is None,
                on_restart=self._on_embedded_restart,
            )
            await self.runtime.start()
            bootstrap = bootstrap or self.runtime.bootstrap
            redis_url = redis_url or self.runtime.redis_url
        registry = TopicRegistry(s.kafka.topic_prefix, s.kafka.partitions)
        await ensure_topics(bootstrap, registry, s.kafka.replication_factor, s.kafka.request_timeout_s)
        self.ctx = RoleContext(self.holder, self.metrics, registry, bootstrap, redis_url)
        if any(role.name == "ingest-av" for role in self.roles) and s.alphavantage.api_key is None:
            self.ctx.av_endpoint = await self._start_av_simulator()
        if self._wants_tws_simulator():
            self.ctx.tws_endpoint = await self._start_tws_simulator()
        self.monitors = [
            redis_monitor(self.ctx.redis(), self.metrics, s.redis.health_interval_s, s.redis.socket_timeout_s),
            broker_monitor(bootstrap, self.metrics, 2.0),
        ]
        for monitor in self.monitors:
            await monitor.check()
            monitor.start()
        await self._start_apps()
        self.holder.subscribe(self._on_reload)
        freeze_long_lived("platform started")  # full collections skip what start-up built
        self._print_banner(bootstrap, redis_url)

    async def _start_av_simulator(self) -> AlphaVantageEndpoint:
        """Start the local AlphaVantage simulator as a child process on loopback.

        Its own process, like the other embedded servers: building and formatting chains is
        CPU work that must not compete with the roles' event loop (and a real service is
        another process too).
        """
        sim = self.settings.alphavantage.simulator
        port = sim.port or free_loopback_port()
        check_port_free("alphavantage-sim", port, "QUANTICITY_ALPHAVANTAGE__SIMULATOR__PORT")
        symbols = sorted({sym for watchlist in self.settings.watchlists.values() for sym in watchlist})
        argv = [
            sys.executable,
            "-m",
            "quanticity.cli.main",
            "sim",
            "alphavantage",
            "--port",
            str(port),
            "--key",
            _SIM_KEY,
            "--seed",
            str(sim.seed),
            "--per-minute",
            str(sim.per_minute_quota),
            "--symbols",
            ",".join(symbols),
        ]
        base_url = f"http://127.0.0.1:{port}/query"
        process = ChildProcess("alphavantage-sim", argv, self.settings.embedded.home.resolve() / "logs" / "av-sim.log")
        process.start()
        self.av_simulator = process
        await process.wait_healthy(
            lambda: http_answers(f"{base_url}?function=MARKET_STATUS&apikey={_SIM_KEY}"),
            self.settings.embedded.start_timeout_s,
        )
        self.metrics.system_module_up.labels(module="alphavantage-sim").set(1)
        log.info("alphavantage_simulator_started", url=base_url, pid=process.pid)
        return AlphaVantageEndpoint(base_url, SecretStr(_SIM_KEY))

    def _wants_tws_simulator(self) -> bool:
        s = self.settings
        ibkr_roles = any(role.name in IBKR_ROLES for role in self.roles)
        return ibkr_roles and s.mode == "sim" and s.ibkr.enabled and s.ibkr.simulator.enabled

    async def _start_tws_simulator(self) -> tuple[str, int]:
        """Start the local TWS-protocol simulator as a child process on loopback (sim mode).

        The IBKR roles then connect to it with the unmodified ib_insync client, exactly as
        they would to a paper TWS.
        """
        sim = self.settings.ibkr.simulator
        port = sim.port or free_loopback_port()
        check_port_free("tws-sim", port, "QUANTICITY_IBKR__SIMULATOR__PORT")
        symbols = sorted(
            {sym for watchlist in self.settings.watchlists.values() for sym in watchlist}
            | set(self.settings.ibkr.underlyings)
            | {venue.symbol for venue in self.settings.ibkr.depth.parsed()}
        )
        argv = [
            sys.executable,
            "-m",
            "quanticity.cli.main",
            "sim",
            "tws",
            "--port",
            str(port),
            "--seed",
            str(sim.seed),
            "--tick-interval-ms",
            str(sim.tick_interval_ms),
            "--symbols",
            ",".join(symbols),
        ]
        process = ChildProcess("tws-sim", argv, self.settings.embedded.home.resolve() / "logs" / "tws-sim.log")
        process.start()
        self.tws_simulator = process
        await process.wait_healthy(lambda: tcp_answers("127.0.0.1", port), self.settings.embedded.start_timeout_s)
        self.metrics.system_module_up.labels(module="tws-sim").set(1)
        log.info("tws_simulator_started", port=port, pid=process.pid)
        return "127.0.0.1", port

    async def _start_apps(self) -> None:
        assert self.ctx is not None  # set by _start before apps exist
        async with self._apps_lock:
            for role in self.roles:
                app = build_app(role, self.ctx)
                # Listed before start(): a Ctrl-C during start-up must still stop it (its consumer
                # runs in a thread that would otherwise keep the process alive).
                self.apps.append((role, app))
                await app.start()
                self.metrics.system_module_up.labels(module=role.name).set(1)
                log.info("role_started", role=role.name, app_id=app.conf.id)

    async def _stop_apps(self) -> None:
        async with self._apps_lock:
            for role, app in reversed(self.apps):
                try:
                    async with asyncio.timeout(20):
                        await app.stop()
                except TimeoutError:
                    log.error("role_stop_timed_out", role=role.name)
                self.metrics.system_module_up.labels(module=role.name).set(0)
                log.info("role_stopped", role=role.name)
            self.apps.clear()

    async def _on_embedded_restart(self, service: str) -> None:
        """A restarted Tansu has lost every topic (memory storage): recreate them and the apps.

        Faust remembers the offsets it read and would drop the new, lower offsets as
        duplicates, so the role apps are rebuilt rather than left to reconnect.
        """
        if service != "broker" or self.ctx is None:
            return
        try:
            await ensure_topics(self.ctx.bootstrap, self.ctx.registry, self.settings.kafka.replication_factor)
        except BrokerUnavailableError as exc:
            self.metrics.broker_errors.labels(kind="topic_setup").inc()
            log.error("topics_not_recreated", error=str(exc))
            return
        log.warning("restarting_roles_after_broker_restart", roles=[r.name for r in self.roles])
        await self._stop_apps()
        await self._start_apps()

    def _on_reload(self, old: Settings, new: Settings) -> None:
        if old.observability.log_level != new.observability.log_level:
            set_level(new.observability.log_level)

    def _print_banner(self, bootstrap: str, redis_url: str) -> None:
        s = self.settings
        embedded = self.runtime.pids() if self.runtime else {}
        broker_note = f"  (embedded Tansu, pid {embedded['broker']})" if "broker" in embedded else ""
        redis_note = f"  (embedded Redis Stack, pid {embedded['redis']})" if "redis" in embedded else ""
        lines = [
            f"Quanticity is up (mode {s.mode}, run {s.run_id}); roles: {', '.join(r.name for r in self.roles)}",
            f"  broker   {bootstrap}{broker_note}",
            f"  redis    {redis_url}{redis_note}",
            f"  metrics  {self.server.url if self.server else 'disabled'}",
            *self._av_banner(),
            *self._tws_banner(),
            f"  logs     {s.embedded.home.resolve() / 'logs'} (servers); this process logs to stderr",
            "  Ctrl-C stops everything; `quanticity topics` lists the topics.",
        ]
        print("\n".join(lines), file=self.banner, flush=True)

    def _av_banner(self) -> list[str]:
        if self.ctx is None or not any(role.name == "ingest-av" for role in self.roles):
            return []
        if self.ctx.av_endpoint is not None:
            pid = self.av_simulator.pid if self.av_simulator else None
            return [f"  alphavantage  {self.ctx.av_endpoint.base_url}  (local simulator, pid {pid}: no API key set)"]
        return [f"  alphavantage  {self.settings.alphavantage.base_url}  (API key from the settings)"]

    def _tws_banner(self) -> list[str]:
        if self.ctx is None or not any(role.name in IBKR_ROLES for role in self.roles):
            return []
        host, port = self.ctx.ibkr_address()
        if self.tws_simulator is not None:
            return [f"  tws      {host}:{port}  (local TWS simulator, pid {self.tws_simulator.pid}: sim mode)"]
        return [f"  tws      {host}:{port}  (TWS / IB Gateway from the settings)"]

    async def stop(self) -> None:
        """Stop apps, monitors, Redis client, embedded servers and the endpoint, in that order."""
        await self._stop_apps()
        for monitor in self.monitors:
            await monitor.stop()
        if self.tws_simulator is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.tws_simulator.stop)
            self.tws_simulator = None
            self.metrics.system_module_up.labels(module="tws-sim").set(0)
        if self.av_simulator is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.av_simulator.stop)
            self.av_simulator = None
            self.metrics.system_module_up.labels(module="alphavantage-sim").set(0)
        if self.ctx is not None:
            await self.ctx.close()
        if self.runtime is not None:
            await self.runtime.stop()
        if self.server is not None:
            self.server.stop()
        self.metrics.gc.uninstall()
        gc.unfreeze()  # what the stopped roles held may be collected again
        self.stopped.set()


async def run_until_signalled(platform: Platform) -> None:
    """Start ``platform``, run until SIGINT/SIGTERM, then stop it. SIGHUP reloads settings."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def request_stop(sig: signal.Signals) -> None:
        log.info("stop_requested", signal=sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, platform.holder.reload)
    try:
        start = asyncio.create_task(platform.start())
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if start in done:
            start.result()  # re-raise a start-up failure
            await waiter
        else:
            log.info("start_up_interrupted")
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await start
        log.info("shutting_down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if not platform.stopped.is_set():
            await platform.stop()

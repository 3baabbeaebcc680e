"""One role's session with TWS / IB Gateway: connect, heartbeat, reconnect, resubscribe.

``ib_insync`` re-subscribes nothing after a reconnect (its own docs and our reference,
§5), so every subscription registers a *restorer* here: a coroutine that issues the
request again on a fresh connection. After each reconnect all restorers run, the time
they take is metered, and the data gap (socket lost → first market data again) is
measured and logged once the data flows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
from ib_insync import IB

from quanticity.errors import QuanticityError
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.pacing import Pace, no_pacing
from quanticity.ibkr.settings import IbkrSettings

log = structlog.get_logger(__name__)

DISCONNECTED: Final = 0
CONNECTING: Final = 1
CONNECTED: Final = 2
FARMS_LOST: Final = 3  # the API socket is up but TWS lost its link to IB (1100)

Restorer = Callable[[IB], Awaitable[None]]
ErrorListener = Callable[[int, int, str, Any], None]

# TWS system and connectivity codes that need an operator's attention, with what to do.
OPERATOR_MESSAGES: Final[dict[int, str]] = {
    1100: "TWS lost its connection to IB's servers; market data is paused. Check the TWS/Gateway host's network.",
    1101: "TWS reconnected to IB but lost the market data subscriptions; they are being re-requested.",
    1102: "TWS reconnected to IB and kept the market data subscriptions.",
    326: "the client id is already in use: another process (or a stale one) holds it. Stop it or change "
    "ibkr.client_ids in config/ibkr.yaml.",
    502: "could not connect to TWS: is TWS/IB Gateway running with 'Enable ActiveX and Socket Clients' on the "
    "configured host and port (config/ibkr.yaml ibkr.host/ibkr.port)?",
    504: "not connected to TWS.",
    2103: "a TWS market data farm connection is broken.",
    2105: "a TWS historical data farm connection is broken.",
    2157: "the TWS security definition server connection is broken.",
}
FARM_OK_CODES: Final = frozenset({2104, 2106, 2158, 2119})


class IbkrConnectError(QuanticityError):
    """TWS could not be reached, or refused the session, within the allowed time."""

    def __init__(self, host: str, port: int, client_id: int, detail: str) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        super().__init__(
            f"IBKR: no API session with {host}:{port} as client id {client_id}: {detail}",
            operator_action="start TWS / IB Gateway with the API enabled on that port, or fix ibkr.host/ibkr.port; "
            "check that no other process uses this client id",
        )


@dataclass(frozen=True)
class Endpoint:
    """Where one role connects, and as whom."""

    host: str
    port: int
    client_id: int
    role: str


class IbkrConnection:
    """A supervised ``ib_insync.IB`` session of one role.

    Args:
        settings: the IBKR settings (timeouts, heartbeat, backoff, market data type).
        endpoint: host, port, client id and role name (the role labels the metrics).
        metrics: the IBKR metric catalogue.
        market_data_type: ``reqMarketDataType`` sent after every connect.
        ib: the client; a new ``IB()`` by default.
        pace: waits for a pacing token before each subscription request (see
            :mod:`quanticity.ibkr.pacing`); none by default.
    """

    def __init__(
        self,
        settings: IbkrSettings,
        endpoint: Endpoint,
        metrics: IbkrMetrics,
        *,
        market_data_type: int = 1,
        ib: IB | None = None,
        pace: Pace = no_pacing,
    ) -> None:
        self.settings = settings
        self.pace = pace
        self.endpoint = endpoint
        self.metrics = metrics
        self.market_data_type = market_data_type
        self.ib = ib if ib is not None else IB()
        self.state = DISCONNECTED
        self.connects = 0
        self._restorers: dict[str, Restorer] = {}
        self._sent: set[str] = set()  # restorers already run on the current connection
        self._error_listeners: list[ErrorListener] = []
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._gap_started: float | None = None
        self._last_error: str = "not attempted yet"
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.errorEvent += self._on_error

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the supervisor (it connects, and reconnects after every loss)."""
        if self._supervisor is None:
            self._stopping = False
            self._supervisor = asyncio.create_task(self._supervise(), name=f"ibkr-{self.endpoint.role}")

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the session is up (and every subscription restored).

        Raises:
            IbkrConnectError: not connected within ``timeout_s``.
        """
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            e = self.endpoint
            raise IbkrConnectError(e.host, e.port, e.client_id, self._last_error) from None

    async def stop(self) -> None:
        """Stop reconnecting and close the session."""
        self._stopping = True
        for task in (self._heartbeat, self._supervisor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._heartbeat = self._supervisor = None
        if self.ib.isConnected():
            self.ib.disconnect()
        self._set_state(DISCONNECTED)

    @property
    def is_connected(self) -> bool:
        """True while the API session is up."""
        return self.state in (CONNECTED, FARMS_LOST)

    # ------------------------------------------------------------------ subscriptions
    async def add_subscription(self, name: str, restore: Restorer) -> None:
        """Register ``restore`` under ``name`` and, when connected, run it now.

        It runs again after every reconnect; the same name replaces an earlier restorer. A
        name already run on the current connection (the reconnect restored it while its
        owner was still subscribing) is not sent twice.
        """
        self._restorers[name] = restore
        if self.is_connected and name not in self._sent:
            await self.pace(1)
            await restore(self.ib)
            self._sent.add(name)

    def set_restorer(self, name: str, restore: Restorer) -> None:
        """Register or replace a restorer without running it (the caller just sent the request)."""
        self._restorers[name] = restore
        if self.is_connected:
            self._sent.add(name)

    def remove_subscription(self, name: str) -> None:
        """Forget a restorer (the caller cancels the live request itself)."""
        self._restorers.pop(name, None)
        self._sent.discard(name)

    @property
    def subscription_names(self) -> list[str]:
        """Names of the registered restorers."""
        return list(self._restorers)

    def add_error_listener(self, listener: ErrorListener) -> None:
        """Call ``listener(req_id, code, message, contract)`` for every TWS error message."""
        self._error_listeners.append(listener)

    def note_data(self) -> None:
        """Market data arrived: closes an open gap and logs its length."""
        if self._gap_started is None:
            return
        gap = time.monotonic() - self._gap_started
        self._gap_started = None
        self.metrics.gap_seconds.labels(self.endpoint.role).observe(gap)
        log.warning("ibkr_data_gap_closed", role=self.endpoint.role, gap_s=round(gap, 3))

    # ------------------------------------------------------------------ internals
    def _set_state(self, state: int) -> None:
        self.state = state
        self.metrics.connection_state.labels(self.endpoint.role).set(state)

    async def _supervise(self) -> None:
        attempt = 0
        backoff = self.settings.reconnect_backoff_s
        while not self._stopping:
            if not await self._connect_once():
                delay = backoff[min(attempt, len(backoff) - 1)]
                attempt += 1
                log.error(
                    "ibkr_connect_failed",
                    role=self.endpoint.role,
                    host=self.endpoint.host,
                    port=self.endpoint.port,
                    client_id=self.endpoint.client_id,
                    attempt=attempt,
                    retry_in_s=delay,
                    error=self._last_error,
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            await self._lost.wait()

    async def _connect_once(self) -> bool:
        e = self.endpoint
        self._set_state(CONNECTING)
        self._lost.clear()
        try:
            await self.ib.connectAsync(e.host, e.port, clientId=e.client_id, timeout=self.settings.connect_timeout_s)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.metrics.error_events.labels("connect").inc()
            if self.ib.isConnected():
                self.ib.disconnect()
            self._set_state(DISCONNECTED)
            return False
        self.ib.reqMarketDataType(self.market_data_type)
        self._sent = set()
        self.connects += 1
        reconnect = self.connects > 1
        self._set_state(CONNECTED)
        started = time.monotonic()
        for name, restore in list(self._restorers.items()):
            try:
                await self.pace(1)
                await restore(self.ib)
                self._sent.add(name)
            except (ConnectionError, OSError, TimeoutError, ValueError, QuanticityError) as exc:
                # One bad subscription must not keep the others down; it is retried next reconnect.
                self.metrics.error_events.labels("resubscribe").inc()
                log.error("ibkr_resubscribe_failed", role=e.role, subscription=name, error=str(exc))
        elapsed = time.monotonic() - started
        if reconnect:
            self.metrics.reconnects.labels(e.role).inc()
            self.metrics.resubscribe_seconds.labels(e.role).observe(elapsed)
            log.warning(
                "ibkr_reconnected",
                role=e.role,
                subscriptions=len(self._restorers),
                resubscribe_s=round(elapsed, 3),
            )
        else:
            log.info("ibkr_connected", role=e.role, host=e.host, port=e.port, client_id=e.client_id)
        self._connected.set()
        self._heartbeat = asyncio.create_task(self._heartbeats(), name=f"ibkr-heartbeat-{e.role}")
        return True

    async def _heartbeats(self) -> None:
        misses = 0
        role = self.endpoint.role
        while self.is_connected:
            await asyncio.sleep(self.settings.heartbeat_interval_s)
            try:
                async with asyncio.timeout(self.settings.heartbeat_timeout_s):
                    await self.ib.reqCurrentTimeAsync()
            except (TimeoutError, ConnectionError):
                if not self.is_connected:
                    return
                misses += 1
                self.metrics.missed_heartbeats.labels(role).inc()
                log.error("ibkr_heartbeat_missed", role=role, consecutive=misses)
                if misses >= self.settings.heartbeat_misses_before_reconnect:
                    log.error("ibkr_heartbeat_dead", role=role, action="closing the socket to reconnect")
                    self.close_dead_socket()
                    return
                continue
            misses = 0
            self.metrics.last_heartbeat.labels(role).set(time.time())

    def close_dead_socket(self) -> None:
        """Close a socket that stopped answering, failing every request still waiting on it.

        ``IB.disconnect()`` alone leaves the requests in flight (a ``qualifyContractsAsync``,
        a ``reqExecutionsAsync``) waiting forever: ib_insync fails them only when the peer
        closes the socket. Here they get the same ``ConnectionError`` a peer close gives, and
        the client's session state is cleared as it is then, so the reconnect rebuilds
        orders and executions from TWS.
        """
        self.ib.disconnect()
        self.ib.wrapper.connectionClosed()

    def _on_disconnected(self) -> None:
        was_up = self.is_connected
        self._connected.clear()
        self._set_state(DISCONNECTED)
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self._heartbeat = None
        if was_up and not self._stopping:
            self._gap_started = time.monotonic()
            self.metrics.disconnects.labels(self.endpoint.role).inc()
            log.error(
                "ibkr_disconnected",
                role=self.endpoint.role,
                action="reconnecting and restoring every subscription",
                subscriptions=len(self._restorers),
            )
        self._lost.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        self.metrics.error_events.labels(str(code)).inc()
        role = self.endpoint.role
        if code in FARM_OK_CODES:
            log.info("ibkr_farm_ok", role=role, code=code, message=message)
        elif code in OPERATOR_MESSAGES:
            log.error("ibkr_system_message", role=role, code=code, message=message, operator=OPERATOR_MESSAGES[code])
        if code == 1100 and self.is_connected:
            self._set_state(FARMS_LOST)
            self._gap_started = self._gap_started or time.monotonic()
        elif code in (1101, 1102) and self.state == FARMS_LOST:
            self._set_state(CONNECTED)
            if code == 1101:
                asyncio.get_running_loop().create_task(self._restore_all("1101"))
        for listener in self._error_listeners:
            listener(req_id, code, message, contract)

    async def _restore_all(self, why: str) -> None:
        started = time.monotonic()
        for name, restore in list(self._restorers.items()):
            try:
                await restore(self.ib)
            except (ConnectionError, OSError, TimeoutError, ValueError, QuanticityError) as exc:
                self.metrics.error_events.labels("resubscribe").inc()
                log.error("ibkr_resubscribe_failed", role=self.endpoint.role, subscription=name, error=str(exc))
        self.metrics.resubscribe_seconds.labels(self.endpoint.role).observe(time.monotonic() - started)
        log.warning("ibkr_resubscribed", role=self.endpoint.role, why=why, subscriptions=len(self._restorers))

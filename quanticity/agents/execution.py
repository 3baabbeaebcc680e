"""Role ``execution``: order intents on ``orders`` → the IBKR router → status events and fills.

An *intent* is an ``OrderEvent`` with status ``pending`` and source ``platform`` (what the
strategy layer and ``quanticity order submit`` publish); the router's own events carry
source ``ibkr`` and are not re-submitted. ``record_id`` of the intent is the signal id the
idempotency token derives from, so a re-published intent never creates a second order.

The role also reconciles the positions its fills add up to with TWS's
(:mod:`quanticity.execution.position_store`): after every connect and reconnect, and every
``ibkr.reconcile_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from ib_insync import IB
from redis.exceptions import RedisError

from quanticity.agents.deadletter import DeadLetterSink, guarded
from quanticity.app.context import RoleContext
from quanticity.execution.ibkr_gateway import IbkrOrderGateway
from quanticity.execution.order_router import OrderRejectedError, OrderRequest, OrderRouter
from quanticity.execution.position_store import IbPositions, PositionStore
from quanticity.execution.positions import PositionStoreError
from quanticity.ibkr.connection_manager import Endpoint, IbkrConnectError, IbkrConnection
from quanticity.ibkr.pacing import MARKET_DATA, ORDERS, Pacer
from quanticity.schemas import Fill, OrderEvent, Record
from quanticity.schemas.codec import decode_record
from quanticity.storage.ibkr_events import OrderLedger

log = structlog.get_logger(__name__)

INTENT_SOURCE = "platform"


def request_from_intent(event: OrderEvent) -> OrderRequest:
    """The order request of an intent (a stock order; the signal id is the intent's record id)."""
    return OrderRequest(
        signal_id=event.signal_id or event.record_id,
        symbol=event.symbol,
        side=event.side,
        quantity=event.quantity,
        limit_price=event.limit_price,
        account=event.account,
    )


class ExecutionRole:
    """The execution role's connection, router and publication."""

    def __init__(self, app: Any, ctx: RoleContext, role: str) -> None:
        settings = ctx.settings.current
        cfg = settings.ibkr
        self.ctx = ctx
        host, port = ctx.ibkr_address()
        prefix = settings.redis.key_prefix
        self.conn = IbkrConnection(
            cfg,
            Endpoint(host, port, cfg.client_ids.execution, role),
            ctx.metrics.ibkr,
            market_data_type=1,
            pace=Pacer(ctx.redis(), ctx.metrics.ibkr, cfg.pacing, MARKET_DATA, prefix),
        )
        self.topics = {"orders": ctx.topic(app, "orders"), "fills": ctx.topic(app, "fills")}
        self.gateway = IbkrOrderGateway(self.conn, Pacer(ctx.redis(), ctx.metrics.ibkr, cfg.pacing, ORDERS, prefix))
        ledger = OrderLedger(ctx.redis(), settings.redis.key_prefix)
        self.router = OrderRouter(
            self.gateway,
            ledger,
            self.publish,
            ctx.metrics.ibkr,
            settings.run_id,
            settings.mode,
        )
        self.gateway.attach(self.router)
        # Daily positions Parquet next to the ledger's audit export.
        self.positions = PositionStore(ledger, ctx.metrics.ibkr, settings.embedded.home / "archive" / "ledger")
        self._reconcile_now = asyncio.Event()
        self.ready = asyncio.Event()

    async def publish(self, record: Record) -> None:
        topic = "fills" if isinstance(record, Fill) else "orders"
        delay = 0.2
        while True:
            try:
                await (await self.topics[topic].send(key=record.key.encode(), value=record))
                self.ctx.metrics.topic_produced.labels(topic=topic).inc()
                return
            except (TimeoutError, KafkaError, OSError) as exc:
                self.ctx.metrics.broker_errors.labels(kind="produce").inc()
                log.error("execution_publish_retrying", topic=topic, error=repr(exc), correlation_id=record.record_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        await self.conn.start()
        while True:
            try:
                await self.conn.wait_connected(self.ctx.settings.current.ibkr.connect_timeout_s * 3)
                break
            except IbkrConnectError as exc:
                log.error("execution_not_connected_yet", error=str(exc))
        self.ready.set()
        reconciler = asyncio.create_task(self._reconcile_forever(), name="positions-reconcile")
        try:
            await asyncio.Event().wait()
        finally:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
            await self.conn.stop()

    async def _wake_reconcile(self, ib: IB) -> None:
        self._reconcile_now.set()  # a restorer: runs after every reconnect

    async def _reconcile_forever(self) -> None:
        """Load the positions once, then reconcile now, after each reconnect and every interval."""
        self.conn.set_restorer("positions-reconcile", self._wake_reconcile)
        broker = IbPositions(self.conn.ib)
        loaded = False
        while True:
            try:
                if self.conn.is_connected:
                    if not loaded:
                        await self.positions.load(self._account())
                        loaded = True
                    await self.positions.reconcile(broker)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one failed pass; logged and counted
                self.ctx.metrics.ibkr.error_events.labels("reconcile").inc()
                log.error("positions_reconcile_failed", error=repr(exc), loaded=loaded)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ctx.settings.current.ibkr.reconcile_interval_s):
                    await self._reconcile_now.wait()
            self._reconcile_now.clear()

    def _account(self) -> str:
        configured = self.ctx.settings.current.ibkr.account
        accounts = self.conn.ib.managedAccounts()
        if configured or accounts:
            return configured or accounts[0]
        raise PositionStoreError(
            "TWS reports no managed account to reconcile positions of",
            operator_action="set ibkr.account in config/ibkr.yaml",
        )

    async def on_intent(self, event: OrderEvent) -> None:
        await self.ready.wait()
        try:
            ack = await self.router.submit(request_from_intent(event))
        except OrderRejectedError as exc:
            log.error("order_rejected", signal_id=event.signal_id or event.record_id, reason=exc.message)
            return
        except RedisError as exc:
            # The ledger is the idempotency guarantee: without it nothing may be placed. Retry.
            self.ctx.metrics.redis_errors.labels(operation="order_ledger").inc()
            log.error("order_ledger_unavailable_retrying", error=str(exc))
            await asyncio.sleep(1.0)
            raise
        log.info("order_ack", order_id=ack.order_id, status=ack.status, duplicate=ack.duplicate)


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the connection task and the intent consumer on ``app``."""
    execution = ExecutionRole(app, ctx, role)
    dead_letters = DeadLetterSink(app, ctx, role)
    spec = ctx.registry.spec("orders")

    @app.task
    async def run_execution() -> None:
        await execution.run()

    async def handle(event: Any) -> None:
        record = decode_record("orders", event.value, spec.models)
        if isinstance(record, OrderEvent) and record.status == "pending" and record.source == INTENT_SOURCE:
            while True:
                try:
                    await execution.on_intent(record)
                    return
                except RedisError:
                    continue

    async def consume_orders(stream: Any) -> None:
        async for event in stream.events():
            await guarded(dead_letters, "orders", event, handle)

    app.agent(ctx.topic(app, "orders"), name=f"{role}-orders")(consume_orders)

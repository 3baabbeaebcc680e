"""Role ``ingest-ibkr``: TWS market data → ``quotes``, ``ticks`` and ``depth``; account → Redis.

The role connects as the ingestion client id, qualifies the configured underlyings,
streams their L1 (with RT volume and closing-auction fields), tick-by-tick and 5 s bars,
picks the 0DTE/1DTE(/swing) option contracts around the money and streams their L1 with
model greeks, and rotates L2 depth through the configured venues. ib_insync's callbacks
hand records to a queue; one publisher task sends them to their topics and waits for the
broker's acknowledgements, so a broker failure is loud and nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import date, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from ib_insync import Contract

from quanticity.app.context import RoleContext
from quanticity.ibkr.account import AccountMonitor
from quanticity.ibkr.connection_manager import Endpoint, IbkrConnectError, IbkrConnection
from quanticity.ibkr.contracts import (
    ContractError,
    answered,
    chain_params,
    option_contracts,
    pick_chain,
    qualify,
    select_expiries,
    select_strikes,
    underlying_contract,
)
from quanticity.ibkr.market_data import MarketDataFeed, RecordStamp
from quanticity.ibkr.market_depth import DepthRotator
from quanticity.ibkr.pacing import MARKET_DATA, Pacer
from quanticity.ibkr.settings import IbkrSettings
from quanticity.observability.gc_pauses import freeze_long_lived
from quanticity.schemas import (
    AuctionState,
    Bar,
    DepthSnapshot,
    OptionQuote,
    OptionQuoteBatch,
    Record,
    Tick,
    UnderlyingQuote,
)
from quanticity.schemas.codec import encode_record

log = structlog.get_logger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
TOPIC_OF: dict[type[Record], str] = {
    UnderlyingQuote: "quotes",
    OptionQuote: "quotes",
    OptionQuoteBatch: "quotes",
    AuctionState: "quotes",
    Tick: "ticks",
    Bar: "ticks",
    DepthSnapshot: "depth",
}
_PUBLISH_BATCH = 256
_SPOT_WAIT_S = 10.0


def trading_day(now: datetime) -> date:
    """The US/Eastern calendar date of ``now`` (0DTE means expiring on this date)."""
    return now.astimezone(NEW_YORK).date()


class IbkrIngest:
    """The ingest role's work: connection, subscriptions, publication."""

    def __init__(self, app: Any, ctx: RoleContext, role: str) -> None:
        self.app = app
        self.ctx = ctx
        self.role = role
        settings = ctx.settings.current
        self.cfg: IbkrSettings = settings.ibkr
        host, port = ctx.ibkr_address()
        metrics = ctx.metrics.ibkr
        self.conn = IbkrConnection(
            self.cfg,
            Endpoint(host, port, self.cfg.client_ids.ingestion, role),
            metrics,
            market_data_type=self.cfg.data_type_for(settings.mode),
            pace=Pacer(ctx.redis(), metrics, self.cfg.pacing, MARKET_DATA, settings.redis.key_prefix),
        )
        self.stamp = RecordStamp(settings.run_id, settings.mode)
        self.queue: asyncio.Queue[Record] = asyncio.Queue()
        # Records go to the app's producer directly, not through ``faust.Topic.send``: that path
        # yields to the event loop three times per record (mode's ``stampede`` around
        # ``producer.maybe_start``), so under load every record waited behind several socket
        # reads of market data and the producer never saw more than one record to batch
        # (bench/ibkr_events.py). Same bytes (the ``quanticity`` codec), key and partitioner.
        self.topic_names = {name: ctx.registry.broker_name(name) for name in set(TOPIC_OF.values())}
        self.producer: Any = None  # the app's producer, started by the publisher
        self.feed = MarketDataFeed(
            self.conn,
            self.queue.put_nowait,
            self.stamp,
            metrics,
            coalesce_ms=self.cfg.quote_coalesce_ms,
            underlying_ticks=self.cfg.underlying_generic_ticks,
            option_ticks=self.cfg.options.generic_ticks,
            data_type=self.cfg.data_type_for(settings.mode),
        )
        self.depth = DepthRotator(self.conn, self.cfg.depth, self.queue.put_nowait, self.stamp, metrics)
        writer = ctx.timeseries_writer()
        self.account = AccountMonitor(self.conn, writer, metrics, self.cfg.account)
        self.underlyings: dict[str, Contract] = {}
        self.options: list[Contract] = []
        ctx.metrics.ibkr.subscriptions.labels(role, "queue")  # created so dashboards see the series

    async def run(self) -> None:
        """Connect, subscribe everything, then publish until cancelled."""
        publisher = asyncio.create_task(self._publish_forever(), name="ibkr-publisher")
        try:
            await self.conn.start()
            while True:
                await self._until_connected()
                try:
                    await self._subscribe_all()
                    break
                except ConnectionError as exc:
                    # The socket went mid-way (a missed heartbeat under start-up load, TWS
                    # restarting): the supervisor reconnects and restores what was registered;
                    # subscribing again adds the rest (nothing is requested twice). The
                    # disconnect itself is counted in ibkr_disconnects_total.
                    log.error("ibkr_subscribe_interrupted", error=str(exc), action="subscribing again once reconnected")
                    await asyncio.sleep(1.0)  # never a tight loop if the error does not come from the socket
            freeze_long_lived("ibkr subscriptions")  # the tickers live as long as the role
            await asyncio.gather(publisher, self._flush_forever())
        finally:
            publisher.cancel()
            await self.depth.stop()
            await self.account.stop()
            await self.conn.stop()

    async def _until_connected(self) -> None:
        while True:
            try:
                await self.conn.wait_connected(self.cfg.connect_timeout_s * 3)
                return
            except IbkrConnectError as exc:
                # The supervisor keeps trying; say so at ERROR until TWS answers.
                log.error("ibkr_not_connected_yet", error=str(exc))

    async def _subscribe_all(self) -> None:
        contracts = [underlying_contract(symbol) for symbol in self.cfg.underlyings]
        qualified: list[Contract] = []
        for contract in contracts:
            try:
                qualified.extend(await self._qualify([contract]))
            except ContractError as exc:
                self.ctx.metrics.ibkr.error_events.labels("200").inc()
                log.error("ibkr_underlying_rejected", symbol=contract.symbol, error=str(exc))
        self.underlyings = {c.symbol: c for c in qualified}
        await self.feed.subscribe_l1(qualified, "underlying")
        await self.feed.subscribe_tick_by_tick([c for c in qualified if c.symbol in self.cfg.tick_by_tick])
        await self.feed.subscribe_bars([c for c in qualified if c.symbol in self.cfg.realtime_bars])
        await self._subscribe_options(qualified)
        await self.depth.start()
        await self.account.start()
        log.info(
            "ibkr_ingest_subscribed",
            underlyings=sorted(self.underlyings),
            options=len(self.options),
            depth_venues=self.cfg.depth.venues,
            depth_slots=self.cfg.depth.slots,
        )

    async def _qualify(self, contracts: list[Contract]) -> list[Contract]:
        """``qualify`` through the pacer; a request TWS drops unanswered is asked again (``request_timeout_s``)."""
        return await qualify(
            self.conn.ib,
            contracts,
            self.conn.pace,
            timeout_s=self.conn.settings.request_timeout_s,
            metrics=self.ctx.metrics.ibkr,
        )

    async def _spot(self, contract: Contract) -> float | None:
        ticker = self.conn.ib.ticker(contract)
        deadline = time.monotonic() + _SPOT_WAIT_S
        while time.monotonic() < deadline:
            if ticker is not None:
                price = ticker.marketPrice()
                if price == price and price > 0:  # not NaN
                    return float(price)
                close = ticker.close
                if close == close and close > 0:
                    return float(close)
            await asyncio.sleep(0.2)
            ticker = self.conn.ib.ticker(contract)
        return None

    async def _subscribe_options(self, underlyings: Sequence[Contract]) -> None:
        ib = self.conn.ib
        budget = self.cfg.max_market_data_lines - len(underlyings)
        today = trading_day(datetime.now(NEW_YORK))
        chosen: list[Contract] = []
        for contract in underlyings:
            try:
                raw = await answered(
                    partial(ib.reqSecDefOptParamsAsync, contract.symbol, "", contract.secType, contract.conId),
                    "reqSecDefOptParams",
                    pace=self.conn.pace,
                    cost=1,
                    timeout_s=self.conn.settings.request_timeout_s,
                    metrics=self.ctx.metrics.ibkr,
                )
                params = pick_chain(chain_params(raw), today)
                expiries = select_expiries(
                    params.expirations, today, self.cfg.options.buckets, self.cfg.options.swing_dte
                )
                spot = await self._spot(contract)
                if spot is None:
                    raise ContractError(f"{contract.symbol}: no price within {_SPOT_WAIT_S:.0f} s to centre strikes on")
                for bucket, expiry in sorted(expiries.items()):
                    strikes = select_strikes(params.strikes, spot, self.cfg.options.strikes_each_side)
                    options = option_contracts(contract.symbol, params, expiry, strikes)
                    room = budget - len(chosen)
                    if room <= 0:
                        log.warning("ibkr_line_budget_exhausted", symbol=contract.symbol, bucket=bucket)
                        break
                    options = options[:room]
                    try:
                        chosen.extend(await self._qualify(options))
                    except ContractError as exc:
                        known = [o for o in options if o.conId]
                        chosen.extend(known)
                        log.error("ibkr_options_partly_rejected", symbol=contract.symbol, bucket=bucket, error=str(exc))
            except ContractError as exc:
                self.ctx.metrics.ibkr.error_events.labels("chain").inc()
                log.error("ibkr_chain_skipped", symbol=contract.symbol, error=str(exc))
        self.options = chosen
        await self.feed.subscribe_l1(chosen, "option")

    async def _flush_forever(self) -> None:
        interval = max(self.cfg.quote_coalesce_ms / 1000.0, 0.05)
        next_bars = 0.0
        while True:
            await asyncio.sleep(interval)
            if self.cfg.quote_coalesce_ms:
                self.feed.flush_dirty()
            now = time.monotonic()
            if now >= next_bars:  # trade-built 5 s bars of quiet symbols close on time
                next_bars = now + 1.0
                self.feed.close_trade_bars()
                await self.feed.ask_silent_lines_again()  # a reqMktData TWS dropped over its rate

    async def _publish_forever(self) -> None:
        produced = self.ctx.metrics.topic_produced
        ingested = self.ctx.metrics.ingest_records
        self.producer = await self.app.maybe_start_producer()
        produced_to: dict[str, Any] = {}  # labelled metric children, looked up once per label value
        ingested_as: dict[str, Any] = {}
        while True:
            batch = [await self.queue.get()]
            while len(batch) < _PUBLISH_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            # Hand the whole batch to the producer first (each send returns once the record is
            # buffered), then wait for the acknowledgements in order: the batch's records are
            # in flight together instead of one broker round trip each.
            pending: list[tuple[Record, str, Awaitable[Any] | Exception]] = []
            for record in batch:
                topic = TOPIC_OF[type(record)]
                pending.append((record, topic, await self._send(record, topic)))
            for record, topic, ack in pending:
                await self._confirm(record, topic, ack)
                if topic not in produced_to:
                    produced_to[topic] = produced.labels(topic=topic)
                if record.type not in ingested_as:
                    ingested_as[record.type] = ingested.labels(source="ibkr", kind=record.type)
                produced_to[topic].inc()
                ingested_as[record.type].inc()

    async def _send(self, record: Record, topic: str) -> Awaitable[Any] | Exception:
        """Buffer ``record`` in the producer: the future of its acknowledgement, or why it could not be buffered."""
        try:
            ack: Awaitable[Any] = await self.producer.send(
                self.topic_names[topic], record.key.encode(), encode_record(record), None, None, None
            )
        except (TimeoutError, KafkaError, ProducerSendError, OSError) as exc:
            # Faust wraps a KafkaError raised while buffering in ProducerSendError.
            return exc
        return ack

    async def _confirm(self, record: Record, topic: str, ack: Awaitable[Any] | Exception) -> None:
        delay = 0.2
        while True:
            try:
                if isinstance(ack, Exception):
                    raise ack
                await ack
                return
            except (TimeoutError, KafkaError, ProducerSendError, OSError) as exc:
                self.ctx.metrics.ingest_failures.labels(source="ibkr", reason="broker").inc()
                self.ctx.metrics.broker_errors.labels(kind="produce").inc()
                log.error(
                    "ibkr_record_not_published_retrying",
                    topic=topic,
                    record_type=record.type,
                    error=repr(exc),
                    retry_in_s=delay,
                    correlation_id=record.record_id,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                ack = await self._send(record, topic)


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the IBKR ingest task on ``app``."""

    @app.task
    async def run_ibkr_ingest() -> None:
        await IbkrIngest(app, ctx, role).run()

"""Rotating L2 depth: TWS allows three depth subscriptions, the watchlist has more venues.

Each configured ``SYMBOL@EXCHANGE`` (never SMART; validated at start-up by qualifying it on
that exchange) gets a slot for ``dwell_s``, then hands it to the next venue in round-robin
order. While a venue holds a slot its book is published as a :class:`DepthSnapshot` at
most once per ``snapshot_interval_s``. Refusals (309 too many depth requests, 310/317 book
reset, 10092 deep book not allowed, 200 unknown contract) are counted in
``ibkr_depth_errors_total{code}`` and free the slot for the next venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from ib_insync import IB, Contract, Ticker

from quanticity.ibkr.connection_manager import IbkrConnection
from quanticity.ibkr.contracts import ContractError, depth_contract, qualify
from quanticity.ibkr.market_data import RecordStamp
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.settings import DepthSettings, DepthVenue
from quanticity.schemas import DepthLevel, DepthSnapshot, Record, stable_id

log = structlog.get_logger(__name__)

DEPTH_ERROR_CODES: Final = frozenset({309, 310, 316, 317, 10092, 2152})


@dataclass
class _Slot:
    venue: DepthVenue
    contract: Contract
    ticker: Ticker
    since: float
    last_publish: float = 0.0
    failed: bool = False


def depth_snapshot(venue: DepthVenue, ticker: Ticker, rows: int, stamp: RecordStamp) -> DepthSnapshot | None:
    """The ticker's current book (best ``rows`` levels per side), or None while it is empty."""
    bids = [DepthLevel(price=lvl.price, size=lvl.size, market_maker=lvl.marketMaker or None) for lvl in ticker.domBids]
    asks = [DepthLevel(price=lvl.price, size=lvl.size, market_maker=lvl.marketMaker or None) for lvl in ticker.domAsks]
    bids = [lvl for lvl in bids if lvl.price > 0 and lvl.size > 0][:rows]
    asks = [lvl for lvl in asks if lvl.price > 0 and lvl.size > 0][:rows]
    if not bids and not asks:
        return None
    when = datetime.now(UTC)
    top = (bids[0].price if bids else None, asks[0].price if asks else None)
    rid = stable_id("ibkr-depth", venue.symbol, venue.exchange, when.timestamp(), *top)
    return DepthSnapshot(
        symbol=venue.symbol,
        venue=venue.exchange,
        bids=bids,
        asks=asks,
        **stamp.envelope(rid, when),
    )


class DepthRotator:
    """Cycles the configured venues through the depth slots and publishes their books.

    Args:
        conn: the role's supervised connection.
        settings: venues, slots, rows, dwell and snapshot interval.
        emit: hands a snapshot to the publisher.
        stamp: records' envelope.
        metrics: IBKR metrics.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        conn: IbkrConnection,
        settings: DepthSettings,
        emit: Callable[[Record], None],
        stamp: RecordStamp,
        metrics: IbkrMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.emit = emit
        self.stamp = stamp
        self.metrics = metrics
        self.clock = clock
        self._queue: deque[tuple[DepthVenue, Contract]] = deque()
        self._slots: list[_Slot] = []
        self._task: asyncio.Task[None] | None = None
        self.rejected: list[tuple[DepthVenue, str]] = []
        self.published: dict[str, int] = {}
        conn.add_error_listener(self._on_error)

    async def start(self) -> None:
        """Validate the venues (qualify each on its exchange), then start rotating (once: a
        second call, after a start cut short by a lost connection, starts what is missing)."""
        if self._task is not None:
            return
        self._queue.clear()
        self.rejected.clear()
        for venue in self.settings.parsed():
            contract = depth_contract(venue.symbol, venue.exchange)
            try:
                await qualify(self.conn.ib, [contract], self.conn.pace)
            except ContractError as exc:
                self.rejected.append((venue, str(exc)))
                self.metrics.depth_errors.labels("200").inc()
                log.error("ibkr_depth_venue_rejected", venue=str(venue), error=str(exc))
                continue
            self._queue.append((venue, contract))
        if not self._queue:
            log.error("ibkr_depth_disabled", reason="no configured depth venue qualified")
            return
        await self.conn.add_subscription("depth", self._restore)
        self._task = asyncio.create_task(self._run(), name="ibkr-depth-rotation")

    async def stop(self) -> None:
        """Stop rotating and cancel the active depth requests."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.conn.is_connected:
            for slot in self._slots:
                self._cancel(slot)
        self._slots.clear()

    @property
    def active(self) -> list[str]:
        """``SYMBOL@EXCHANGE`` of the venues holding a slot now."""
        return [str(slot.venue) for slot in self._slots]

    def _request(self, ib: IB, venue: DepthVenue, contract: Contract) -> _Slot:
        held = ib.ticker(contract)
        if held is not None:  # the book of the venue's previous slot (``_cancel`` keeps it)
            held.domBids.clear()
            held.domAsks.clear()
        ticker = ib.reqMktDepth(contract, numRows=self.settings.rows, isSmartDepth=False)
        return _Slot(venue, contract, ticker, self.clock())

    def _cancel(self, slot: _Slot) -> None:
        """Cancel a slot's depth request, keeping its book until the venue is requested again.

        ``IB.cancelMktDepth`` empties the ticker's book at once, but TWS may still have
        updates of the request on the wire, and ib_insync keeps routing them to that ticker:
        an update of a position the emptied book no longer has raises in its decoder
        (``IndexError``, an error log line per message; seen in ``make run`` when a rotation
        cancelled three books mid-stream). Kept, the late updates land on the old book,
        which nothing publishes once the slot is gone.
        """
        ib = self.conn.ib
        req_id = ib.wrapper.endTicker(slot.ticker, "mktDepth")
        if req_id:
            ib.client.cancelMktDepth(req_id, False)
        else:
            log.warning(
                "ibkr_depth_cancel_unknown", venue=str(slot.venue), reason="no depth request of the slot's contract"
            )

    async def _restore(self, ib: IB) -> None:
        # After a reconnect the old requests are gone on both sides: request the same venues again.
        self._slots = [self._request(ib, slot.venue, slot.contract) for slot in self._slots]
        self.metrics.subscriptions.labels(self.conn.endpoint.role, "depth").set(len(self._slots))

    def _rotate(self) -> None:
        now = self.clock()
        keep: list[_Slot] = []
        for slot in self._slots:
            expired = now - slot.since >= self.settings.dwell_s
            if (expired and len(self._queue) > 0) or slot.failed:
                if not slot.failed and self.conn.is_connected:
                    self._cancel(slot)
                self._queue.append((slot.venue, slot.contract))
                self.metrics.depth_rotations.inc()
            else:
                keep.append(slot)
        self._slots = keep
        while len(self._slots) < self.settings.slots and self._queue and self.conn.is_connected:
            venue, contract = self._queue.popleft()
            if any(s.venue == venue for s in self._slots):
                self._queue.append((venue, contract))
                break
            self._slots.append(self._request(self.conn.ib, venue, contract))
            log.info("ibkr_depth_slot", venue=str(venue), active=self.active)
        self.metrics.subscriptions.labels(self.conn.endpoint.role, "depth").set(len(self._slots))

    def _publish_books(self) -> None:
        now = self.clock()
        for slot in self._slots:
            if now - slot.last_publish < self.settings.snapshot_interval_s:
                continue
            snapshot = depth_snapshot(slot.venue, slot.ticker, self.settings.rows, self.stamp)
            if snapshot is None:
                continue
            slot.last_publish = now
            self.emit(snapshot)
            self.published[str(slot.venue)] = self.published.get(str(slot.venue), 0) + 1
            self.metrics.events.labels("depth").inc()

    async def _run(self) -> None:
        tick = min(self.settings.snapshot_interval_s, 0.5)
        while True:
            if self.conn.is_connected:
                self._rotate()
                self._publish_books()
            await asyncio.sleep(tick)

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code not in DEPTH_ERROR_CODES:
            return
        self.metrics.depth_errors.labels(str(code)).inc()
        con_id = getattr(contract, "conId", 0) if contract is not None else 0
        for slot in self._slots:
            if con_id and slot.contract.conId == con_id and code in (309, 10092, 316):
                slot.failed = True
        log.error("ibkr_depth_error", code=code, message=message, con_id=con_id, active=self.active)


def venues_text(venues: Sequence[DepthVenue]) -> str:
    """Venues as ``SPY@ARCA, QQQ@ISLAND`` for logs and the banner."""
    return ", ".join(str(v) for v in venues)

"""One client connection: handshake, startApi, pacing, dispatch by message id, and sending.

Messages of one connection are handled one at a time, in arrival order, so a cancel can
never overtake the placeOrder it cancels. A handler's failure is logged with the
message id and fields and answered the way TWS answers (320 for an unreadable request,
322 for one it failed to process); the connection survives. On EOF the session's
subscriptions end with it; its orders stay in the book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import ClassVar, Protocol

from quanticity.simulation.calendar import to_et
from quanticity.simulation.errors import MarketHorizonError, SimulationRequestError
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.messages import Msg
from quanticity.simulation.tws.protocol import (
    MAX_FRAME,
    FieldReader,
    MalformedMessage,
    encode_fields,
    frame,
    negotiate_version,
    split_payload,
)
from quanticity.simulation.tws.quotes import Quote
from quanticity.simulation.tws.state import SimState
from quanticity.simulation.tws.underlying_stats import UnderlyingStats

__all__ = ["CLIENT_ID_IN_USE", "BarSubscription", "Handler", "QuoteSubscription", "Session", "tws_time"]

log = logging.getLogger(__name__)

Handler = Callable[["Session", FieldReader], Awaitable[None]]


class QuoteSubscription(Protocol):
    """A stream re-rendered from every new quote of its contract (L1, depth, tick-by-tick)."""

    kind: ClassVar[str]
    req_id: int
    contract: SimContract
    delay_s: int

    @property
    def needs_stats(self) -> bool: ...

    def render(self, q: Quote, stats: UnderlyingStats | None) -> list[Msg]: ...


class BarSubscription(Protocol):
    """A stream stepped on every feed tick that computes its own bars (real-time, keepUpToDate)."""

    kind: ClassVar[str]
    req_id: int

    async def step(self, state: SimState, now: datetime) -> list[Msg]: ...


CLIENT_ID_IN_USE = "Unable to connect as the client id is already in use. Retry with a unique client id."
_FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefil"),
)
_MAX_BUFFER = 32 * 1024 * 1024  # a client this far behind is dropped, as TWS drops slow consumers
# Unsupported requests that carry a request id, and where: the error then ends the client's wait.
_REQ_ID_FIELD = {96: 1, 88: 1, 52: 2, 81: 1, 83: 1, 84: 1, 86: 1, 22: 1, 100: 1, 102: 1, 104: 1}


class Session:
    """One connected client.

    Args:
        state: the simulator's shared state.
        reader, writer: the connection's streams.
        handlers: message id -> handler.
        claim: registers the session under a client id; False when the id is taken.
    """

    def __init__(
        self,
        state: SimState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handlers: Mapping[int, Handler],
        claim: Callable[[Session, int], bool],
    ) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.handlers = handlers
        self._claim = claim
        self.client_id: int | None = None
        self.server_version = 0
        self.market_data_type = 1
        self.account_updates = False
        self.positions_stream = False
        self.quote_subs: dict[int, QuoteSubscription] = {}  # L1, depth and tick-by-tick streams by reqId
        self.bar_subs: dict[int, BarSubscription] = {}  # real-time bars and keepUpToDate histories by reqId
        self.pnl_subs: dict[int, int | None] = {}  # reqId -> conId (None: account-level reqPnL)
        self.pnl_sent: dict[int, tuple[float, ...]] = {}
        self.account_multi: set[int] = set()
        self.received = 0
        self._recent: deque[float] = deque()
        self._paced_until = 0.0
        self._held: list[bytes] = []
        self._account_sent: dict[tuple[object, ...], object] = {}
        self.closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"Session(client_id={self.client_id})"

    # ------------------------------------------------------------------ sending
    def send(self, msg: Msg) -> None:
        """Send one message."""
        self.send_many((msg,))

    def send_many(self, msgs: Iterable[Msg]) -> None:
        """Send messages in order (held back while the simulator is stalled)."""
        data = b"".join(frame(msg) for msg in msgs)
        if not data or self.writer.is_closing():
            return
        if self.state.faults.stalled:
            self._held.append(data)
            return
        if self._held:
            self.flush_held()
        self.writer.write(data)
        transport = self.writer.transport
        if transport.get_write_buffer_size() > _MAX_BUFFER:
            log.warning("client %s is %d bytes behind; dropping it", self.client_id, transport.get_write_buffer_size())
            self.abort()

    def flush_held(self) -> None:
        """Send what a stall held back."""
        held, self._held = self._held, []
        if held and not self.writer.is_closing():
            self.writer.write(b"".join(held))

    def send_account(self, msgs: Iterable[Msg], force: bool = False) -> None:
        """Send the account values and portfolio rows that changed since they were last sent.

        Like TWS, an account subscription hears about what changed; ``force`` resends everything
        (the reply to reqAccountUpdates). updateAccountTime follows any change.
        """
        out: list[Msg] = []
        stamp: Msg | None = None
        for msg in msgs:
            if msg[0] == 8:
                stamp = msg
                continue
            key, value = ((6, msg[2], msg[4]), msg[3]) if msg[0] == 6 else ((7, msg[2]), tuple(msg[13:19]))
            if force or self._account_sent.get(key) != value:
                self._account_sent[key] = value
                out.append(msg)
        if out and stamp is not None:
            out.append(stamp)
        self.send_many(out)

    def error(self, req_id: int, code: int, text: str) -> None:
        """Send an error message (4)."""
        self.send(m.error(req_id, code, text))

    def abort(self) -> None:
        """Close the socket abruptly (no FIN handshake with pending data)."""
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    def clear_subscriptions(self) -> None:
        """End every subscription of this connection."""
        self.quote_subs.clear()
        self.bar_subs.clear()
        self.pnl_subs.clear()
        self.account_multi.clear()
        self.account_updates = False
        self.positions_stream = False
        self._account_sent.clear()

    # ------------------------------------------------------------------ receiving
    async def _frame(self) -> list[str]:
        header = await self.reader.readexactly(4)
        (size,) = struct.unpack(">I", header)
        if size > MAX_FRAME:
            raise ConnectionError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
        return split_payload(await self.reader.readexactly(size))

    async def _handshake(self) -> bool:
        prefix = await self.reader.readexactly(4)
        if prefix != b"API\0":
            log.warning("connection without the API prefix (got %r); closing it", prefix)
            return False
        header = await self.reader.readexactly(4)
        (size,) = struct.unpack(">I", header)
        if size > 1024:
            log.warning("oversized version greeting (%d bytes); closing", size)
            return False
        greeting = (await self.reader.readexactly(size)).decode("ascii", errors="replace")
        try:
            self.server_version = negotiate_version(greeting, self.state.config.server_version)
        except SimulationRequestError as exc:
            log.warning("handshake refused: %s", exc)
            return False
        reply = encode_fields([self.server_version, tws_time(self.state.now())]).encode()
        self.writer.write(struct.pack(">I", len(reply)) + reply)
        fields = await self._frame()
        reader = FieldReader(fields)
        if reader.msg_id != 71:
            log.warning("first message after the handshake is %s, not startApi; closing", fields)
            return False
        try:
            reader.skip(1)
            client_id = reader.integer(0)
        except MalformedMessage as exc:
            log.warning("malformed startApi: %s", exc)
            return False
        if not self._claim(self, client_id):
            self.error(-1, 326, CLIENT_ID_IN_USE)
            await self.writer.drain()
            return False
        self.client_id = client_id
        cfg = self.state.config
        self.send_many([m.managed_accounts(cfg.accounts), m.next_valid_id(self.state.orders.next_order_id(client_id))])
        if cfg.farm_notices:
            self.send_many(m.error(-1, code, text) for code, text in _FARM_NOTICES)
        return True

    def _paced(self, fields: list[str]) -> bool:
        """Count one client message; False (and error 100) when it exceeds the rate limit.

        A message the ``pacing_drops`` fault names is dropped the same way, whatever the rate.
        """
        now = time.monotonic()
        recent = self._recent
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        limit = self.state.config.max_messages_per_second
        if self.state.faults.take_drop(fields):
            self.error(-1, 100, f"Max rate of messages per second has been exceeded:max={limit} rec={limit + 1}")
            return False
        if len(recent) >= limit:
            if now >= self._paced_until:  # one error per window, not one per dropped message
                self._paced_until = now + 1.0
                self.error(
                    -1, 100, f"Max rate of messages per second has been exceeded:max={limit} rec={len(recent) + 1}"
                )
            return False
        recent.append(now)
        return True

    async def serve(self) -> None:
        """Run the connection until EOF, an abort, or cancellation."""
        peer = self.writer.get_extra_info("peername")
        try:
            if not await self._handshake():
                return
            log.info("client %s connected from %s (server version %d)", self.client_id, peer, self.server_version)
            await self._read_and_dispatch()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.info("client %s disconnected: %s", self.client_id, type(exc).__name__)
        finally:
            self.clear_subscriptions()
            self.closed.set()
            if not self.writer.is_closing():
                self.writer.close()

    async def _read_and_dispatch(self) -> None:
        # Messages are counted for pacing as they arrive, as TWS counts them, and handled in
        # order by a separate task: a slow handler (a chain's secdef) must not make the
        # requests queued behind it look like a burst when they are finally read.
        inbox: asyncio.Queue[list[str] | None] = asyncio.Queue()
        dispatcher = asyncio.create_task(self._dispatch_forever(inbox), name=f"tws-dispatch-{self.client_id}")
        try:
            while True:
                fields = await self._frame()
                self.received += 1
                if self._paced(fields):
                    inbox.put_nowait(fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The client is gone: what it sent before still counts (an order sent just
            # before a disconnect is placed), as with TWS.
            inbox.put_nowait(None)
            with contextlib.suppress(ConnectionError):
                await dispatcher
            raise
        finally:
            if not dispatcher.done():
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher

    async def _dispatch_forever(self, inbox: asyncio.Queue[list[str] | None]) -> None:
        try:
            while (fields := await inbox.get()) is not None:
                await self.state.faults.wait_running()
                await self._dispatch(fields)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            # A handler bug ends this session visibly instead of leaving the client waiting.
            log.exception("client %s: request handling failed; closing the connection", self.client_id)
            self.writer.close()
            raise

    async def _dispatch(self, fields: list[str]) -> None:
        try:
            reader = FieldReader(fields)
        except MalformedMessage as exc:
            log.warning("unreadable message: %s", exc)
            self.error(-1, 320, f"Error reading request: unreadable message id in {fields[:1]!r}")
            return
        handler = self.handlers.get(reader.msg_id)
        if handler is None:
            position = _REQ_ID_FIELD.get(reader.msg_id)
            req_id = -1
            if position is not None and len(fields) > position and fields[position].lstrip("-").isdigit():
                req_id = int(fields[position])
            log.warning("unsupported message id %d: %s", reader.msg_id, fields)
            self.error(
                req_id,
                321,
                f"Error validating request.-'{reader.msg_id}' : cause - the simulator does not "
                f"support message id {reader.msg_id}",
            )
            return
        try:
            await handler(self, reader)
        except MalformedMessage as exc:
            log.warning("malformed message %d from client %s: %s", exc.msg_id, self.client_id, exc)
            self.error(exc.req_id, 320, f"Error reading request. Message id {exc.msg_id}: {exc}")
        except (SimulationRequestError, MarketHorizonError) as exc:
            log.warning("request %d from client %s failed: %s", reader.msg_id, self.client_id, exc)
            self.error(reader.req_id, 321, f"Error validating request.-'{reader.msg_id}' : cause - {exc}")
        except Exception:  # TWS answers 322 and keeps the connection; the trace goes to the log
            log.exception("message %d from client %s failed: fields %s", reader.msg_id, self.client_id, fields)
            self.error(reader.req_id, 322, f"Error processing request. Message id {reader.msg_id}.")


def tws_time(t: datetime) -> str:
    """``t`` the way TWS writes times: ``YYYYMMDD HH:MM:SS US/Eastern``."""
    return to_et(t).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"

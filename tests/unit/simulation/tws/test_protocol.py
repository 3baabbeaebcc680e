"""Framing, field encoding and message layouts, checked against the real ib_insync client.

ib_insync's own ``Client`` produces the request bytes and its ``Decoder`` reads our
replies: the installed client library is the oracle for every layout here.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ib_insync
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_insync.decoder import Decoder

from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws import order_messages as om
from quanticity.simulation.tws.messages import ARITY, Bar, OptionGreeks
from quanticity.simulation.tws.orders import Execution, SimOrder
from quanticity.simulation.tws.protocol import (
    UNSET_DOUBLE,
    FieldReader,
    MalformedMessage,
    encode_fields,
    frame,
    negotiate_version,
    split_payload,
)
from tests.unit.simulation.tws.samples import STOCK


class Recorder:
    """Stands in for ib_insync's Wrapper: records every callback the Decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


def decode(msg: m.Msg) -> list[tuple[str, tuple[Any, ...]]]:
    """What ib_insync's Decoder makes of ``msg`` at server version 176 (a dropped message gives [])."""
    recorder = Recorder()
    fields = split_payload(encode_fields(msg).encode())
    Decoder(recorder, 176).interpret(fields)  # type: ignore[arg-type]
    return recorder.calls


def client_request(call: Callable[[ib_insync.Client], None]) -> list[str]:
    """The fields ib_insync's Client sends for one request (server version 176)."""
    sent: list[bytes] = []
    client = ib_insync.Client(ib_insync.Wrapper(ib_insync.IB()))
    client._serverVersion = 176
    client.connState = ib_insync.Client.CONNECTED
    client.conn.sendMsg = sent.append  # type: ignore[method-assign]
    client.conn.isConnected = lambda: True  # type: ignore[method-assign]
    # Client.sendMsg paces with the current event loop's clock; an earlier async test may
    # have left this thread with none, so give the call its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        call(client)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    (data,) = sent
    (size,) = struct.unpack(">I", data[:4])
    assert size == len(data) - 4
    return split_payload(data[4:])


# ---------------------------------------------------------------------------- framing
def test_frame_is_length_prefixed_with_every_field_nul_terminated() -> None:
    data = frame([9, 1, 17])
    assert data == struct.pack(">I", 7) + b"9\x001\x0017\x00"
    assert split_payload(data[4:]) == ["9", "1", "17"]


def test_values_are_encoded_the_way_tws_writes_them() -> None:
    assert encode_fields([True, False, None, 0, 1.5, UNSET_DOUBLE, Decimal("10"), Decimal("1.25"), "x"]) == (
        "1\x000\x00\x000\x001.5\x001.7976931348623157E308\x0010\x001.25\x00x\x00"
    )


# TWS fields are UTF-8 text: lone surrogates (category Cs) cannot be encoded by anyone.
@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20),
        max_size=30,
    )
)
def test_split_payload_inverts_encoding(fields: list[str]) -> None:
    assert split_payload(encode_fields(fields).encode()) == fields


@pytest.mark.parametrize(
    ("greeting", "version"), [("v157..176", 176), ("v157..178", 176), ("v157..170 +PACEAPI", 170), ("v176", 176)]
)
def test_version_negotiation_answers_the_lower_maximum(greeting: str, version: int) -> None:
    assert negotiate_version(greeting, 176) == version


@pytest.mark.parametrize("greeting", ["v100..150", "hello", ""])
def test_version_negotiation_refuses_what_it_cannot_serve(greeting: str) -> None:
    with pytest.raises(SimulationRequestError):
        negotiate_version(greeting, 176)


def test_field_reader_reports_the_message_and_request_of_a_bad_field() -> None:
    r = FieldReader(["1", "11", "42", "notanumber"])
    r.skip(1)
    assert r.req() == 42
    with pytest.raises(MalformedMessage) as info:
        r.integer()
    assert (info.value.msg_id, info.value.req_id) == (1, 42)
    with pytest.raises(MalformedMessage):
        FieldReader(["x"])


# ---------------------------------------------------------------------------- requests, as the client sends them
def test_reads_the_contract_of_a_real_req_mkt_data() -> None:
    spy = ib_insync.Stock("SPY", "SMART", "USD", primaryExchange="ARCA")
    fields = client_request(lambda c: c.reqMktData(9, spy, "106,233", False, False, []))
    r = FieldReader(fields)
    r.skip(1)
    assert r.req() == 9
    q = r.contract()
    assert (q.con_id, q.symbol, q.sec_type, q.exchange, q.primary_exchange, q.currency) == (
        0, "SPY", "STK", "SMART", "ARCA", "USD",
    )  # fmt: skip
    assert not r.flag() and r.text() == "106,233" and not r.flag()


def test_parses_a_real_limit_order() -> None:
    spy = ib_insync.Stock("SPY", "SMART", "USD")
    order = ib_insync.LimitOrder("BUY", 3, 450.0, orderRef="lmt-ref-2", tif="DAY", outsideRth=True)
    fields = client_request(lambda c: c.placeOrder(22, spy, order))
    assert len(fields) == 115
    ticket = om.parse_place_order(FieldReader(fields))
    assert (ticket.order_id, ticket.action, ticket.quantity, ticket.order_type) == (22, "BUY", Decimal(3), "LMT")
    assert (ticket.limit, ticket.aux, ticket.tif, ticket.order_ref) == (Decimal("450.0"), None, "DAY", "lmt-ref-2")
    assert ticket.outside_rth and ticket.transmit and not ticket.what_if and ticket.contract.symbol == "SPY"


def test_parses_trailing_what_if_and_algo_orders() -> None:
    spy = ib_insync.Stock("SPY", "SMART", "USD")
    trail = ib_insync.Order(action="SELL", totalQuantity=5, orderType="TRAIL", auxPrice=1.5, trailStopPrice=590.0)
    ticket = om.parse_place_order(FieldReader(client_request(lambda c: c.placeOrder(5, spy, trail))))
    assert (ticket.order_type, ticket.aux, ticket.trail_stop) == ("TRAIL", Decimal("1.5"), Decimal("590.0"))
    algo = ib_insync.LimitOrder("BUY", 1, 500.0, whatIf=True, algoStrategy="Adaptive")
    algo.algoParams = [ib_insync.TagValue("adaptivePriority", "Normal")]
    ticket = om.parse_place_order(FieldReader(client_request(lambda c: c.placeOrder(6, spy, algo))))
    assert ticket.what_if and ticket.limit == Decimal("500.0")


# ---------------------------------------------------------------------------- replies, as the client reads them
def _order() -> SimOrder:
    order = SimOrder(7, 22, 1000005, STOCK, "BUY", Decimal(3), "LMT", Decimal("450.0"), None, "DAY", "", "DU1",
                        "ref-1", 0, False, None, None)  # fmt: skip
    order.filled = Decimal(3)
    order.avg_fill_price = order.last_fill_price = Decimal("449.5")
    order.status = "Filled"
    order.completed_at = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    return order


def _execution() -> Execution:
    o = _order()
    return Execution("0000f4245.00000001.01.01", datetime(2026, 3, 3, 15, 0, 2, tzinfo=UTC), 7, 22, o.perm_id,
                        o.contract, "BOT", Decimal(3), Decimal("449.5"), Decimal(3), Decimal("449.5"), "ref-1", "DU1",
                        "ARCA", Decimal("1.00"), None)  # fmt: skip


def _all_messages() -> list[m.Msg]:
    bar = Bar("20260303 10:00:00 US/Eastern", 1772550000, 1.0, 4.0, 0.5, 2.0, 100.0, 2.1, 7)
    greeks = OptionGreeks(0.2, 0.5, 3.2, 0.1, 0.04, 0.3, -0.2, 600.0)
    o, e = _order(), _execution()
    return [
        m.tick_price(1, 1, 600.0, 300), m.tick_size(1, 8, 1000), m.error(-1, 2104, "ok"), m.managed_accounts(["DU1"]),
        m.next_valid_id(1), m.current_time(1772550000), m.tick_generic(1, 24, 0.2), m.tick_string(1, 45, "17"),
        m.tick_option_computation(1, 13, greeks), m.tick_req_params(1, 0.01, "9c0001", 3), m.market_data_type(1, 1),
        m.tick_snapshot_end(1), m.mkt_depth_l2(1, 0, "ARCA", 0, 1, 600.0, 100), m.realtime_bar(1, bar),
        m.historical_data_update(1, bar), m.contract_data_end(1), m.sec_def_opt_param_end(1),
        m.update_account_value("NetLiquidation", "1.00", "USD", "DU1"), m.update_account_time("15:00"),
        m.account_download_end("DU1"), m.position("DU1", o.contract.fields11("SMART"), 3.0, 449.5), m.position_end(),
        m.account_summary(1, "DU1", "NetLiquidation", "1", "USD"), m.account_summary_end(1),
        m.account_update_multi(1, "DU1", "", "NetLiquidation", "1", "USD"), m.account_update_multi_end(1),
        m.pnl(1, 1.0, 2.0, 3.0), m.pnl_single(1, 3.0, 1.0, 2.0, 3.0, 4.0), m.open_order_end(), m.exec_details_end(1),
        m.head_timestamp(1, "20210303-14:30:00"),
        m.update_portfolio(o.contract.fields11("ARCA"), 3.0, 450.0, 1350.0, 449.8, 0.6, 0.0, "DU1"),
        om.order_status(o), om.open_order(o), om.completed_order(o), om.exec_details(-1, e), om.commission_report(e),
        [102],
    ]  # fmt: skip


@pytest.mark.parametrize("msg", _all_messages(), ids=lambda msg: str(msg[0]))
def test_fixed_messages_have_the_reference_arity_and_decode(msg: m.Msg) -> None:
    msg_id = int(str(msg[0]))
    assert len(msg) == ARITY[msg_id]
    calls = decode(msg)
    assert calls, f"ib_insync dropped message {msg_id}: {msg}"


def test_historical_data_update_is_open_close_high_low() -> None:
    bar = Bar("20260303 10:00:00 US/Eastern", 0, 1.0, 4.0, 0.5, 2.0, 100.0, 2.1, 7)
    ((_, (req_id, decoded)),) = decode(m.historical_data_update(3, bar))
    assert req_id == 3 and (decoded.open, decoded.high, decoded.low, decoded.close) == (1.0, 4.0, 0.5, 2.0)
    assert (decoded.volume, decoded.average, decoded.barCount) == (100.0, 2.1, 7)


def test_historical_data_bars_decode_and_end_the_request() -> None:
    bars = [Bar("20260303", 0, 1.0, 4.0, 0.5, 2.0, 10.0, 2.0, 3), Bar("20260304", 0, 2.0, 3.0, 1.0, 2.5, 5.0, 2.1, 1)]
    calls = decode(m.historical_data(4, "a", "b", bars))
    assert [name for name, _ in calls] == ["historicalData", "historicalData", "historicalDataEnd"]
    assert calls[1][1][1].close == 2.5


def test_sec_def_strikes_run_to_the_end() -> None:
    ((name, args),) = decode(m.sec_def_opt_param(5, "SMART", 756733, "SPY", "100", ["20260320"], [590.0, 600.0]))
    assert name == "securityDefinitionOptionParameter"
    assert args[1:] == ("SMART", "756733", "SPY", "100", ["20260320"], [590.0, 600.0])


def test_open_order_and_execution_decode_into_the_right_slots() -> None:
    ((_, (order_id, contract, order, state)),) = decode(om.open_order(_order()))
    assert (order_id, order.orderRef, order.clientId, order.permId, state.status) == (22, "ref-1", 7, 1000005, "Filled")
    assert (contract.conId, order.lmtPrice, order.totalQuantity) == (756733, 450.0, 3.0)
    ((_, (req_id, _, execution)),) = decode(om.exec_details(-1, _execution()))
    assert (req_id, execution.side, execution.shares, execution.orderRef) == (-1, "BOT", 3.0, "ref-1")
    assert execution.time == datetime(2026, 3, 3, 15, 0, 2, tzinfo=UTC)
    ((_, (report,)),) = decode(om.commission_report(_execution()))
    assert report.commission == 1.0 and report.realizedPNL == UNSET_DOUBLE


def test_error_without_advanced_json_would_be_lost() -> None:
    assert decode(m.error(4, 200, "No security definition"))[0][1] == (4, 200, "No security definition", "")
    assert decode([4, 2, 4, 200, "No security definition"]) == []  # the 6th field is required at 166+

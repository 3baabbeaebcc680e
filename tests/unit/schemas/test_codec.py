"""Tests of quanticity.schemas.codec: round trips, decode failure reasons, payload preservation."""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pytest
from faust.serializers import codecs
from hypothesis import given
from hypothesis import strategies as st

from quanticity.errors import RecordDecodeError
from quanticity.schemas import OptionChainSnapshot, OrderEvent, Record, UnderlyingQuote
from quanticity.schemas.codec import (
    CODEC_NAME,
    RecordCodec,
    UndecodedPayload,
    decode_record,
    encode_record,
    payload_fields,
    raw_bytes,
)
from quanticity.schemas.columns import MAGIC, encode_columnar
from quanticity.topology.registry import TOPICS, TopicSpec

from .samples import all_samples

SAMPLES = all_samples()
QUOTE_MODELS: dict[str, type[Record]] = {"underlying_quote": UnderlyingQuote}
ALL_MODELS: dict[str, type[Record]] = {m.model_fields["type"].default: m for spec in TOPICS for m in spec.records}
_CASES = [(spec, model) for spec in TOPICS for model in spec.records]


def test_every_registered_record_type_has_a_sample() -> None:
    """The samples cover every record type the topic registry declares (so none escapes the round trip)."""
    assert {model for _, model in _CASES} <= set(SAMPLES)


@pytest.mark.parametrize(("spec", "model"), _CASES, ids=[f"{s.name}-{m.__name__}" for s, m in _CASES])
def test_round_trip_through_the_faust_codec(spec: TopicSpec, model: type[Record]) -> None:
    """encode_record → RecordCodec._loads → decode_record gives back an equal record of the same type."""
    record = SAMPLES[model]

    decoded = decode_record(spec.name, RecordCodec()._loads(encode_record(record)), spec.models)

    assert type(decoded) is model
    assert decoded == record
    assert decoded.model_dump(mode="json") == record.model_dump(mode="json")


def test_round_trip_keeps_decimal_exact() -> None:
    """Decimal prices travel as strings and come back as equal Decimals, not floats."""
    order = SAMPLES[OrderEvent]
    assert isinstance(order, OrderEvent)

    wire = orjson.loads(encode_record(order))
    decoded = decode_record("orders", wire, {"order_event": OrderEvent})

    assert wire["limit_price"] == "1.2345"
    assert isinstance(decoded, OrderEvent) and decoded.limit_price == Decimal("1.2345")


def test_decode_accepts_raw_bytes_too() -> None:
    """decode_record also takes the undecoded bytes of a payload."""
    quote = SAMPLES[UnderlyingQuote]

    assert decode_record("quotes", encode_record(quote), QUOTE_MODELS) == quote
    assert decode_record("quotes", bytearray(encode_record(quote)), QUOTE_MODELS) == quote


def test_faust_codec_is_registered_under_its_name() -> None:
    """The 'quanticity' codec is known to Faust and round-trips a record's JSON."""
    codec = codecs.get_codec(CODEC_NAME)
    quote = SAMPLES[UnderlyingQuote]

    assert orjson.loads(codec.dumps(quote)) == orjson.loads(encode_record(quote))
    assert codec.loads(encode_record(quote)) == orjson.loads(encode_record(quote))


def test_encode_refuses_unknown_types() -> None:
    """A value orjson and the codec cannot represent is an error, not silently dropped."""
    with pytest.raises(TypeError):
        encode_record({"x": object()})


def _reason(value: Any, models: dict[str, type[Record]] = QUOTE_MODELS) -> str:
    with pytest.raises(RecordDecodeError) as info:
        decode_record("quotes", value, models)
    assert info.value.topic == "quotes"
    assert info.value.detail
    return info.value.reason


def _quote_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(encode_record(SAMPLES[UnderlyingQuote]))
    data.update(changes)
    return data


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00", b"{not json", b"", b'{"a": 1'])
def test_garbage_bytes_are_not_json(garbage: bytes) -> None:
    """Bytes that are not JSON fail with reason not_json, directly or via the codec."""
    assert _reason(garbage) == "not_json"
    loaded = RecordCodec()._loads(garbage)
    assert isinstance(loaded, UndecodedPayload) and loaded.raw == garbage
    assert _reason(loaded) == "not_json"


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None, b"[1, 2]"])
def test_json_that_is_not_an_object(value: Any) -> None:
    """A JSON list, string, number or null fails with reason not_object."""
    assert _reason(value) == "not_object"


@pytest.mark.parametrize("kind", ["option_chain", "nope", None, 5])
def test_type_not_carried_by_the_topic(kind: Any) -> None:
    """A type the topic does not carry (or no / a non-string type) fails with unknown_type."""
    data = _quote_dict(type=kind)
    if kind is None:
        del data["type"]
    assert _reason(data) == "unknown_type"


@pytest.mark.parametrize("version", [UnderlyingQuote.SCHEMA_VERSION + 1, "1", 1.0])
def test_newer_or_malformed_schema_version(version: Any) -> None:
    """A schema_version newer than the model's (or not an integer) fails with schema_version."""
    assert _reason(_quote_dict(schema_version=version)) == "schema_version"


def test_current_schema_version_is_accepted() -> None:
    """The model's own SCHEMA_VERSION decodes."""
    current = _quote_dict(schema_version=UnderlyingQuote.SCHEMA_VERSION)
    decoded = decode_record("quotes", current, QUOTE_MODELS)
    assert decoded.schema_version == UnderlyingQuote.SCHEMA_VERSION


@pytest.mark.parametrize(
    "changes",
    [
        {"bid": 10.0, "ask": 9.0},  # crossed
        {"event_time": "2025-03-04T14:30:00"},  # naive
        {"symbol": "spy"},  # lower case
        {"extra_field": 1},  # unknown field
    ],
)
def test_invalid_records_fail_validation(changes: dict[str, Any]) -> None:
    """A known type with bad fields fails with reason validation, naming the type."""
    with pytest.raises(RecordDecodeError) as info:
        decode_record("quotes", _quote_dict(**changes), QUOTE_MODELS)
    assert info.value.reason == "validation"
    assert info.value.detail.startswith("underlying_quote:")


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_record_decode_error(payload: bytes) -> None:
    """For any bytes, decode_record returns a Record or raises RecordDecodeError, nothing else."""
    for value in (payload, RecordCodec()._loads(payload)):
        try:
            result = decode_record("quotes", value, ALL_MODELS)
        except RecordDecodeError as exc:
            assert exc.reason in {"not_json", "not_object", "unknown_type", "schema_version", "validation"}
        else:
            assert isinstance(result, Record)


@given(
    st.sampled_from(sorted(ALL_MODELS)),
    st.dictionaries(
        st.sampled_from(
            [
                "schema_version",
                "record_id",
                "event_time",
                "ingest_time",
                "source",
                "run_id",
                "mode",
                "symbol",
                "bid",
                "ask",
                "computed_at",
                "valid_until",
                "strike",
                "right",
                "price",
                "quantity",
                "limit_price",
                "bids",
                "values",
                "expiry",
                "low",
                "high",
            ]
        ),
        _json,
        max_size=10,
    ),
)
def test_arbitrary_json_objects_decode_or_raise_record_decode_error(kind: str, fields: dict[str, Any]) -> None:
    """Objects with a known type and arbitrary field values never escape as another exception."""
    try:
        result = decode_record("any", {**fields, "type": kind}, ALL_MODELS)
    except RecordDecodeError as exc:
        assert exc.reason in {"schema_version", "validation"}
    else:
        assert isinstance(result, ALL_MODELS[kind])


@given(st.binary(max_size=5000))
def test_payload_fields_preserve_the_raw_bytes(raw: bytes) -> None:
    """The base64 field decodes to exactly the bytes, the sha256 matches, the preview is ≤ 2 KiB of them."""
    fields = payload_fields(raw)

    assert base64.b64decode(fields["payload_b64"], validate=True) == raw
    assert fields["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    assert fields["payload_preview"] == raw[:2048].decode("utf-8", errors="replace")


@given(st.binary(max_size=256))
def test_raw_bytes_recovers_undecoded_payloads(raw: bytes) -> None:
    """Whatever the codec returned for some bytes, raw_bytes gives back bytes that decode to it."""
    loaded = RecordCodec()._loads(raw)
    recovered = raw_bytes(loaded)

    if isinstance(loaded, UndecodedPayload):
        assert recovered == raw
    else:
        assert orjson.loads(recovered) == loaded
    assert raw_bytes(raw) == raw
    assert raw_bytes(memoryview(raw)) == raw


def test_payload_fields_keep_a_large_payload_whole_and_preview_2_kib() -> None:
    """A 1 MiB payload is kept whole in base64; the preview holds only its first 2048 bytes."""
    raw = bytes(range(256)) * 4096
    ascii_raw = b"x" * 10_000

    assert base64.b64decode(payload_fields(raw)["payload_b64"]) == raw
    assert payload_fields(ascii_raw)["payload_preview"] == "x" * 2048


_CHAIN_MODELS: dict[str, type[Record]] = {"option_chain": OptionChainSnapshot}


def test_chains_travel_in_the_columnar_form_and_map_onto_the_received_bytes() -> None:
    """An option chain is sent as a header plus float64 columns, and its decoded columns are views of the payload."""
    chain = SAMPLES[OptionChainSnapshot]
    assert isinstance(chain, OptionChainSnapshot)
    wire = encode_record(chain)

    assert wire.startswith(MAGIC)
    decoded = decode_record("quotes", RecordCodec()._loads(wire), _CHAIN_MODELS)
    assert isinstance(decoded, OptionChainSnapshot)
    assert decoded == chain and decoded.model_dump(mode="json") == chain.model_dump(mode="json")
    assert not decoded.bid.flags.owndata and not decoded.bid.flags.writeable  # no copy, and frozen
    assert raw_bytes(RecordCodec()._loads(wire)) == wire


def test_a_json_chain_from_before_the_columnar_form_still_decodes() -> None:
    """Recorded or replayed chains in JSON (lists with null) decode to the same record."""
    chain = SAMPLES[OptionChainSnapshot]
    as_json = orjson.dumps(chain.model_dump(mode="json"))

    assert decode_record("quotes", RecordCodec()._loads(as_json), _CHAIN_MODELS) == chain


def _cut(wire: bytes) -> bytes:
    return wire[:-3]


def _header_too_long(wire: bytes) -> bytes:
    return wire[:6] + (len(wire) * 2).to_bytes(4, "little") + wire[10:]


def _header_not_json(wire: bytes) -> bytes:
    return wire[:10] + b"}" + wire[11:]


def _no_directory(wire: bytes) -> bytes:
    return wire.replace(b'"columns":[', b'"kolumns":[', 1)


def _trailing(wire: bytes) -> bytes:
    return wire + b"\x00" * 8


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_cut, "column 'rho' of .* rows runs past the payload"),
        (_header_too_long, "header of .* bytes runs past"),
        (_header_not_json, "header is not JSON"),
        (_no_directory, "header 'columns' is not a list"),
        (_trailing, "8 bytes after the last column"),
        (lambda wire: wire[:8], "not a columnar payload"),
    ],
)
def test_damaged_columnar_payloads_are_refused_with_the_reason_and_kept_whole(damage: Any, message: str) -> None:
    """A damaged columnar payload becomes a not_json decode error that says what is wrong; the bytes survive."""
    damaged = damage(encode_record(SAMPLES[OptionChainSnapshot]))
    loaded = RecordCodec()._loads(damaged)

    assert isinstance(loaded, UndecodedPayload) and raw_bytes(loaded) == damaged
    with pytest.raises(RecordDecodeError, match=f"columnar payload: {message}") as caught:
        decode_record("quotes", loaded, _CHAIN_MODELS)
    assert caught.value.reason == "not_json"


def test_a_columnar_payload_with_a_column_of_the_wrong_length_fails_validation() -> None:
    """Columns of unequal length in a well-formed payload are a validation error naming the column."""
    chain = SAMPLES[OptionChainSnapshot]
    fields = dict(chain.__dict__)
    fields["ask"] = np.concatenate([chain.ask, [1.0]])
    wire = encode_columnar(fields, chain.FLOAT_COLUMNS)

    with pytest.raises(RecordDecodeError, match="column ask has") as caught:
        decode_record("quotes", wire, _CHAIN_MODELS)
    assert caught.value.reason == "validation"

"""The wire codec: records as JSON via orjson, registered with Faust as ``quanticity``.

Columnar records (``ColumnarMixin``: option chain snapshots) go in the binary columnar form
of ``schemas/columns.py`` instead: a JSON header and raw float64 columns. Either form
decodes, so JSON chains recorded or replayed from before still read.

Decoding never raises inside Faust: a payload that is neither JSON nor a well-formed
columnar record comes back as an ``UndecodedPayload`` and the agent's ``decode_record``
turns it (and any validation failure) into a ``RecordDecodeError`` that the caller routes
to the dead-letter topic.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
from faust.serializers import codecs
from pydantic import BaseModel, ValidationError

from quanticity.errors import RecordDecodeError
from quanticity.schemas.base import Record
from quanticity.schemas.columns import (
    ColumnarMixin,
    ColumnarPayload,
    ColumnarPayloadError,
    column_list,
    decode_columnar,
    encode_columnar,
    is_columnar,
)

CODEC_NAME = "quanticity"
_PREVIEW_BYTES = 2048


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return column_list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_record(record: Record | Mapping[str, Any]) -> bytes:
    """Serialize a record (or a plain mapping): columnar records in the columnar form, the rest as JSON."""
    if isinstance(record, ColumnarMixin) and isinstance(record, BaseModel):
        return encode_columnar(record.__dict__, record.FLOAT_COLUMNS)
    data = record.model_dump() if isinstance(record, BaseModel) else record
    return orjson.dumps(data, default=_default)


@dataclass(frozen=True)
class UndecodedPayload:
    """Bytes that were neither JSON nor a well-formed columnar record, kept whole for the dead-letter topic."""

    raw: bytes
    error: str


class RecordCodec(codecs.Codec):
    """Faust codec: ``dumps`` any record or mapping, ``loads`` JSON or an ``UndecodedPayload``."""

    def _dumps(self, obj: Any) -> bytes:
        return encode_record(obj)

    def _loads(self, s: bytes) -> Any:
        return _parse(s)


def _parse(raw: bytes | bytearray | memoryview) -> Any:
    """Parsed JSON, a ``ColumnarPayload``, or an ``UndecodedPayload`` saying why it is neither."""
    if is_columnar(raw):
        try:
            return decode_columnar(bytes(raw))
        except ColumnarPayloadError as exc:
            return UndecodedPayload(raw=bytes(raw), error=f"columnar payload: {exc}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return UndecodedPayload(raw=bytes(raw), error=str(exc))


codecs.register(CODEC_NAME, RecordCodec())


def payload_fields(raw: bytes) -> dict[str, str]:
    """The dead-letter fields that preserve ``raw`` exactly and show a readable preview."""
    return {
        "payload_b64": base64.b64encode(raw).decode("ascii"),
        "payload_preview": raw[:_PREVIEW_BYTES].decode("utf-8", errors="replace"),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
    }


def decode_record(topic: str, value: Any, models: Mapping[str, type[Record]]) -> Record:
    """Validate a decoded payload as one of the record types a topic carries.

    Args:
        topic: logical topic name, for the error.
        value: what the codec returned (a dict, an ``UndecodedPayload``, or raw bytes).
        models: ``type`` discriminator → record model accepted on this topic.

    Returns:
        The validated record.

    Raises:
        RecordDecodeError: with reason ``not_json`` (neither JSON nor a well-formed columnar
            record), ``not_object``, ``unknown_type``, ``schema_version`` or ``validation``.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        value = _parse(value)
    if isinstance(value, UndecodedPayload):
        raise RecordDecodeError(topic, "not_json", value.error)
    if isinstance(value, ColumnarPayload):
        value = value.fields
    if not isinstance(value, dict):
        raise RecordDecodeError(topic, "not_object", f"expected a JSON object, got {type(value).__name__}")
    kind = value.get("type")
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise RecordDecodeError(topic, "unknown_type", f"type {kind!r} is not one of {sorted(models)}")
    version = value.get("schema_version", 1)
    if not isinstance(version, int) or version > model.SCHEMA_VERSION:
        raise RecordDecodeError(
            topic, "schema_version", f"{kind} schema_version {version!r} is newer than supported {model.SCHEMA_VERSION}"
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(record)'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise RecordDecodeError(topic, "validation", f"{kind}: {problems}") from None


def raw_bytes(value: Any) -> bytes:
    """Best reconstruction of the original bytes of a payload for the dead-letter topic."""
    if isinstance(value, UndecodedPayload | ColumnarPayload):
        return value.raw
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return orjson.dumps(value, default=_default)

"""The wire codec: records as JSON via orjson, registered with Faust as ``quanticity``.

Decoding never raises inside Faust: a payload that is not JSON comes back as an
``UndecodedPayload`` and the agent's ``decode_record`` turns it (and any validation
failure) into a ``RecordDecodeError`` that the caller routes to the dead-letter topic.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from faust.serializers import codecs
from pydantic import BaseModel, ValidationError

from quanticity.errors import RecordDecodeError
from quanticity.schemas.base import Record

CODEC_NAME = "quanticity"
_PREVIEW_BYTES = 2048


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_record(record: Record | Mapping[str, Any]) -> bytes:
    """Serialize a record (or a plain mapping) to JSON bytes."""
    data = record.model_dump() if isinstance(record, BaseModel) else record
    return orjson.dumps(data, default=_default)


@dataclass(frozen=True)
class UndecodedPayload:
    """Bytes that were not JSON, kept whole for the dead-letter topic."""

    raw: bytes
    error: str


class RecordCodec(codecs.Codec):
    """Faust codec: ``dumps`` any record or mapping, ``loads`` JSON or an ``UndecodedPayload``."""

    def _dumps(self, obj: Any) -> bytes:
        return encode_record(obj)

    def _loads(self, s: bytes) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            return UndecodedPayload(raw=bytes(s), error=str(exc))


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
        RecordDecodeError: with reason ``not_json``, ``not_object``, ``unknown_type``,
            ``schema_version`` or ``validation``.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RecordDecodeError(topic, "not_json", str(exc)) from None
    if isinstance(value, UndecodedPayload):
        raise RecordDecodeError(topic, "not_json", value.error)
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
    if isinstance(value, UndecodedPayload):
        return value.raw
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return orjson.dumps(value, default=_default)

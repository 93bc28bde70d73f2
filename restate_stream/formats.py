"""Value formats for bindings and the publisher: json (typed), avro, bytes, string.

Decoding raises DecodeError with a reason fit for a dead-letter record; encoding raises
EncodeError. JSON values decode into the handler's declared type: a pydantic model, a
dataclass, or plain JSON for `dict`/`list`/`Any`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Protocol

import pydantic

CLOUDEVENTS_SPEC = "1.0"


class DecodeError(ValueError):
    pass


class EncodeError(ValueError):
    pass


class Codec(Protocol):
    def decode(self, data: bytes) -> Any: ...

    def encode(self, value: Any) -> bytes: ...


class BytesCodec:
    def decode(self, data: bytes) -> bytes:
        return data

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray):
            raise EncodeError(f"format bytes: expected bytes, got {type(value).__name__}")
        return bytes(value)


class StringCodec:
    def decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not UTF-8 text: {exc}") from exc

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise EncodeError(f"format string: expected str, got {type(value).__name__}")
        return value.encode("utf-8")


@functools.cache
def _adapter(t: type) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(t)


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # pydantic v2
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


class JsonCodec:
    def __init__(self, value_type: Any = None) -> None:
        self.value_type = value_type

    def parse(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(f"invalid JSON: {exc}") from exc

    def convert(self, obj: Any) -> Any:
        """Turn parsed JSON into the declared type."""
        t = self.value_type
        if t is None or t is Any or t in (dict, list, str, int, float, bool):
            if t in (dict, list, str, int, float, bool) and not isinstance(obj, t):
                raise DecodeError(f"expected a JSON {t.__name__}, got {type(obj).__name__}")
            return obj
        if hasattr(t, "model_validate"):
            try:
                return t.model_validate(obj)
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                raise DecodeError(f"does not match {t.__name__}: {exc}") from exc
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            if not isinstance(obj, dict):
                raise DecodeError(f"expected a JSON object for {t.__name__}")
            try:
                # Field types are checked (a str where the dataclass says int is bad data,
                # found here and dead-lettered, not a TypeError deep in the handler).
                return _adapter(t).validate_python(obj)
            except pydantic.ValidationError as exc:
                raise DecodeError(f"does not match {t.__name__}: {exc}") from exc
        return obj

    def decode(self, data: bytes) -> Any:
        return self.convert(self.parse(data))

    def encode(self, value: Any) -> bytes:
        return json_text(value).encode()


def codec_for(
    fmt: str,
    value_type: Any = None,
    schema: Path | None = None,
    wire: str = "plain",
    registry_url: str | None = None,
) -> Codec:
    if fmt == "json":
        return JsonCodec(value_type)
    if fmt == "bytes":
        return BytesCodec()
    if fmt == "string":
        return StringCodec()
    if fmt == "avro":
        from restate_stream.avro_format import avro_codec  # fastavro is an optional extra

        if schema is None:
            raise ValueError("format avro needs a schema file")
        codec: Codec = avro_codec(schema, wire, registry_url)
        return codec
    raise ValueError(f"unknown format {fmt!r}: expected json, avro, bytes or string")


def json_text(value: Any) -> str:
    """Compact JSON for `value` (pydantic models and dataclasses included), or EncodeError."""
    try:
        return json.dumps(to_jsonable(value), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"not JSON-serialisable: {exc}") from exc


def cloudevent(event_id: str, event_type: str, source: str, time: str, data: Any) -> bytes:
    """A CloudEvents 1.0 structured-mode JSON envelope around `data`."""
    return cloudevent_json(event_id, event_type, source, time, json_text(data))


def cloudevent_json(event_id: str, event_type: str, source: str, time: str, data: str) -> bytes:
    """The envelope around `data` already encoded as JSON text (encoded once, checked early)."""
    head = {
        "specversion": CLOUDEVENTS_SPEC,
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time,
        "datacontenttype": "application/json",
    }
    return (json.dumps(head, separators=(",", ":"))[:-1] + ',"data":' + data + "}").encode()


def unwrap_cloudevent(obj: Any) -> tuple[Any, str | None, str | None]:
    """(data, id, type) of a CloudEvents envelope; (obj, None, None) for anything else."""
    if isinstance(obj, dict) and obj.get("specversion") == CLOUDEVENTS_SPEC and "id" in obj:
        return obj.get("data"), str(obj["id"]), obj.get("type")
    return obj, None, None

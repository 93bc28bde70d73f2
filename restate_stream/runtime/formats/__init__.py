"""Value formats for bindings and the publisher: json (typed), avro, bytes, string.

`codec_for` is the one registry from a binding's format to its codec; CloudEvents is the
envelope restate-stream publishes in (an event id travelling with the data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from restate_stream.runtime.formats.base import Codec, DecodeError, EncodeError
from restate_stream.runtime.formats.cloudevents import (
    CLOUDEVENTS_SPEC,
    cloudevent,
    cloudevent_json,
    envelope_traceparent,
    unwrap_cloudevent,
)
from restate_stream.runtime.formats.json import JsonCodec, json_text, to_jsonable
from restate_stream.runtime.formats.text import BytesCodec, StringCodec

__all__ = [
    "CLOUDEVENTS_SPEC",
    "BytesCodec",
    "Codec",
    "DecodeError",
    "EncodeError",
    "JsonCodec",
    "StringCodec",
    "cloudevent",
    "cloudevent_json",
    "codec_for",
    "envelope_traceparent",
    "json_text",
    "to_jsonable",
    "unwrap_cloudevent",
]


def codec_for(
    fmt: str,
    value_type: Any = None,
    schema: Path | None = None,
    wire: str = "plain",
    registry_url: str | None = None,
    schema_id: int | None = None,
) -> Codec:
    """The codec for a format. `schema_id` is the registry id of `schema`, which encoding in
    the Confluent wire format writes (a publisher's concern; decoding needs the registry)."""
    if fmt == "json":
        return JsonCodec(value_type)
    if fmt == "bytes":
        return BytesCodec()
    if fmt == "string":
        return StringCodec()
    if fmt == "avro":
        from restate_stream.runtime.formats.avro import avro_codec  # fastavro is an optional extra

        if schema is None:
            raise ValueError("format avro needs a schema file")
        codec: Codec = avro_codec(schema, wire, registry_url, schema_id)
        return codec
    raise ValueError(f"unknown format {fmt!r}: expected json, avro, bytes or string")

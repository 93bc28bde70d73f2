"""The avro format for bindings: connectors' fastavro codec, its errors as DecodeError."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

from connectors.avro import AvroCodec, AvroDecodeError
from restate_stream.formats import DecodeError


class BindingAvroCodec:
    def __init__(self, schema: Path, wire: str) -> None:
        self._codec = AvroCodec(schema, wire=cast(Literal["plain", "confluent"], wire))

    def decode(self, data: bytes) -> Any:
        try:
            return self._codec.decode(data)
        except AvroDecodeError as exc:
            raise DecodeError(str(exc)) from exc

    def encode(self, value: Any) -> bytes:
        encoded: bytes = self._codec.encode(value)
        return encoded


def avro_codec(schema: Path, wire: str) -> BindingAvroCodec:
    return BindingAvroCodec(schema, wire)

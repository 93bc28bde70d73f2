"""The avro format for bindings: connectors' fastavro codec, its errors as DecodeError."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

from connectors.avro import AvroCodec, AvroDecodeError
from connectors.schema_registry import SchemaRegistryClient
from restate_stream.runtime.formats.base import DecodeError


class BindingAvroCodec:
    def __init__(
        self,
        schema: Path,
        wire: str,
        registry_url: str | None = None,
        schema_id: int | None = None,
    ) -> None:
        # Lookups are cached per schema id: only the first record of a new id asks the
        # registry; a registry that is down raises (the invocation is retried, not
        # dead-lettered), an id it does not know is a DecodeError.
        registry = SchemaRegistryClient(registry_url) if registry_url else None
        self._codec = AvroCodec(
            schema,
            wire=cast(Literal["plain", "confluent"], wire),
            schema_id=schema_id,
            registry=registry,
        )

    def needs_io(self, data: bytes) -> bool:
        return self._codec.needs_lookup(data)

    def decode(self, data: bytes) -> Any:
        try:
            return self._codec.decode(data)
        except AvroDecodeError as exc:
            raise DecodeError(str(exc)) from exc

    def encode(self, value: Any) -> bytes:
        encoded: bytes = self._codec.encode(value)
        return encoded


def avro_codec(
    schema: Path, wire: str, registry_url: str | None = None, schema_id: int | None = None
) -> BindingAvroCodec:
    return BindingAvroCodec(schema, wire, registry_url, schema_id)

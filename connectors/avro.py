"""Avro codecs over fastavro: plain schemaless binary, or the Confluent wire format.

Confluent framing is magic byte 0, the writer schema's registry id (4 bytes, big-endian),
then the binary record. A record written under another schema id is decoded with that writer
schema, fetched from the registry, and resolved to the codec's own (reader) schema: producers
may evolve their schema compatibly without breaking consumers.

AvroDecodeError means the bytes are bad (dead-letter them); a SchemaRegistryError raised by
decode means the registry could not answer (retry).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import fastavro
import fastavro.schema
import fastavro.validation
from fastavro.read import SchemaResolutionError

from connectors.base_errors import RecordFormatError
from connectors.schema_registry import SCHEMA_NOT_FOUND, SchemaRegistryClient, SchemaRegistryError

_MAGIC = 0
_HEADER = 5  # magic byte + schema id


class AvroDecodeError(RecordFormatError, ValueError):
    pass


def load_schema(path: str | Path) -> Any:
    """Parse an .avsc file; named types it references load from sibling `<Name>.avsc` files."""
    try:
        return fastavro.schema.load_schema(str(path))
    except Exception as exc:  # fastavro raises a handful of unrelated types here
        raise ValueError(f"Avro schema file {path}: {_explain(exc)}") from exc


def parse_schema(schema: Mapping[str, Any] | str | Path) -> Any:
    """A Path is a schema file; a str is JSON schema text, or a file path if it is not JSON."""
    if isinstance(schema, Path):
        return load_schema(schema)
    raw: Any = schema
    if isinstance(schema, str):
        if not schema.lstrip().startswith(("{", "[", '"')):
            return load_schema(schema)
        try:
            raw = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Avro schema text is not valid JSON: {exc}") from exc
    try:
        return fastavro.parse_schema(dict(raw) if isinstance(raw, Mapping) else raw)
    except Exception as exc:
        raise ValueError(f"invalid Avro schema {_name(raw)}: {_explain(exc)}") from exc


class AvroCodec:
    """Encode values to / decode values from Avro binary with one (reader) schema.

    In confluent mode, encoding needs `schema_id` (the id this schema has in the registry).
    Decoding reads records under `schema_id` with this schema and any other id through
    `registry`; with neither an id nor a registry, every record is read with this schema.
    """

    def __init__(
        self,
        schema: Mapping[str, Any] | str | Path,
        wire: Literal["plain", "confluent"] = "plain",
        schema_id: int | None = None,
        registry: SchemaRegistryClient | None = None,
    ) -> None:
        if wire not in ("plain", "confluent"):
            raise ValueError(f"unknown Avro wire format {wire!r}: expected plain or confluent")
        self.schema = parse_schema(schema)
        self.name = _name(self.schema)
        self.wire = wire
        self.schema_id = schema_id
        self.registry = registry

    def encode(self, value: Any) -> bytes:
        try:
            fastavro.validation.validate(value, self.schema, raise_errors=True)
        except fastavro.validation.ValidationError as exc:
            problems = _describe_problems(exc.errors, self.name)
            raise ValueError(f"value does not match Avro schema {self.name}: {problems}") from exc
        buffer = io.BytesIO()
        if self.wire == "confluent":
            if self.schema_id is None:
                raise ValueError(
                    f"encoding Avro schema {self.name} in the Confluent wire format needs "
                    "its schema_id"
                )
            buffer.write(bytes([_MAGIC]) + self.schema_id.to_bytes(4, "big"))
        try:
            fastavro.schemaless_writer(buffer, self.schema, value)
        except Exception as exc:  # validation passed, so this is fastavro's last word
            raise ValueError(
                f"value does not match Avro schema {self.name}: {_explain(exc)}"
            ) from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> Any:
        if self.wire == "plain":
            return self._read(data, 0, self.schema)
        if not data:
            raise AvroDecodeError("not Confluent wire format: the record is empty")
        if data[0] != _MAGIC:
            raise AvroDecodeError(
                f"not Confluent wire format: first byte 0x{data[0]:02x}, expected 0x00"
            )
        if len(data) < _HEADER:
            raise AvroDecodeError(
                f"not Confluent wire format: {len(data)} bytes, shorter than the 5-byte header"
            )
        return self._read(data, _HEADER, self._writer_schema(int.from_bytes(data[1:5], "big")))

    def needs_lookup(self, data: bytes) -> bool:
        """Whether decoding `data` asks the registry (a blocking request) first."""
        if self.wire != "confluent" or self.registry is None or len(data) < _HEADER:
            return False
        schema_id = int.from_bytes(data[1:5], "big")
        return schema_id != self.schema_id and not self.registry.knows(schema_id)

    def _writer_schema(self, schema_id: int) -> Any:
        if schema_id == self.schema_id or (self.schema_id is None and self.registry is None):
            return self.schema
        if self.registry is None:
            raise AvroDecodeError(
                f"unknown schema id {schema_id} (schema {self.name} has id {self.schema_id} "
                "and there is no registry to look others up)"
            )
        try:
            return self.registry.schema_by_id(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code == SCHEMA_NOT_FOUND or exc.status == 404:
                raise AvroDecodeError(f"unknown schema id {schema_id}: {exc}") from exc
            raise

    def _read(self, data: bytes, start: int, writer: Any) -> Any:
        buffer = io.BytesIO(data)
        buffer.seek(start)
        reader = None if writer is self.schema else self.schema
        try:
            value = fastavro.schemaless_reader(buffer, writer, reader)
        except Exception as exc:  # garbage bytes make fastavro fail in many ways
            if reader is not None and isinstance(exc, SchemaResolutionError):
                raise AvroDecodeError(
                    f"record written with schema {_name(writer)} cannot be read as schema "
                    f"{self.name}: {exc}"
                ) from exc
            raise AvroDecodeError(
                f"record does not match schema {self.name}: {_explain(exc)}"
            ) from exc
        # schemaless_reader stops after one record; leftovers mean the schema was wrong.
        if (left := len(data) - buffer.tell()) > 0:
            raise AvroDecodeError(
                f"record does not match schema {self.name}: {left} bytes left after the record"
            )
        return value


def _name(schema: Any) -> str:
    if isinstance(schema, Mapping):
        return str(schema.get("name") or schema.get("type") or "?")
    if isinstance(schema, list):
        return "union[" + ", ".join(_name(s) for s in schema) + "]"
    return str(schema)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, fastavro.schema.UnknownType):
        return f"unknown type {exc.name!r} (define it, or put it in {exc.name}.avsc beside it)"
    if isinstance(exc, EOFError):
        return "the data ends early (truncated, or not written with this schema)"
    text = f"{type(exc).__name__}: {exc}".removesuffix(": ")
    if exc.__cause__ is not None:
        text += f" ({_explain(exc.__cause__)})"
    return text


def _describe_problems(problems: Sequence[Any], schema_name: str) -> str:
    # fastavro reports a union mismatch once per branch; one line per value reads better.
    expected: dict[str, list[str]] = {}
    for problem in problems:
        datum = repr(problem.datum)
        datum = datum if len(datum) <= 60 else datum[:57] + "..."
        where = f"{problem.field or schema_name} is {datum} ({type(problem.datum).__name__})"
        expected.setdefault(where, []).append(_name(problem.schema))
    return "; ".join(f"{where}, expected {' or '.join(names)}" for where, names in expected.items())

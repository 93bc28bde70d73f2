"""`restate-stream publish`: produce records by hand to a topic, to try a binding.

One record from flags (`--key`, `--value`) or many from a JSONL file, one JSON object a line:
`{"key": "k", "value": ...}` (a JSON value; for format string a JSON string), or
`"value_base64"` for raw bytes, sent as they are whatever the format (how to send a poison
record), and optionally `"partition"`. Every line is checked and encoded before the first
record is sent, so a file with a bad line sends nothing. Records are produced in file order
with idempotence, and the command waits for every acknowledgement.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import sys
import time
import typing
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors import ProduceError, create_producer
from connectors.consume import TopicNotFoundError, partition_count
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.bindings.model import Format
from restate_stream.errors import ConfigurationError
from restate_stream.runtime.event import check_key
from restate_stream.runtime.formats import Codec, cloudevent, codec_for

_FIELDS = ("key", "value", "value_base64", "partition")
_ERRORS_SHOWN = 10
_IN_FLIGHT = 1000  # far below librdkafka's local queue, so sends never wait for room (order)


class PublishInputError(ConfigurationError, ValueError):
    """A problem with a complete message for people (printed without a traceback)."""


@dataclasses.dataclass(frozen=True)
class Line:
    number: int
    key: str | None
    value: Any = None
    raw: bytes | None = None  # from value_base64: sent as is
    partition: int | None = None


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _key(key: Any) -> str | None:
    check_key(key)  # raises InvalidKeyError (a ValueError) naming what is wrong
    return typing.cast(str | None, key)


def parse_line(text: str, number: int) -> Line | None:
    """One JSONL line; None for a blank one. ValueError says what is wrong."""
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(
            f'expected a JSON object like {{"key": "k", "value": ...}}, got a {_json_kind(obj)}'
        )
    if unknown := [f for f in obj if f not in _FIELDS]:
        raise ValueError(f"unknown field {unknown[0]!r} (expected {', '.join(_FIELDS)})")
    if ("value" in obj) == ("value_base64" in obj):
        raise ValueError("needs one of value or value_base64")
    raw = None
    if "value_base64" in obj:
        if not isinstance(obj["value_base64"], str):
            raise ValueError("value_base64 must be a base64 string")
        try:
            raw = base64.b64decode(obj["value_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("value_base64 is not valid base64") from None
    partition = obj.get("partition")
    if partition is not None and (
        not isinstance(partition, int) or isinstance(partition, bool) or partition < 0
    ):
        raise ValueError("partition must be a non-negative integer")
    return Line(number, _key(obj.get("key")), obj.get("value"), raw, partition)


def _problems(errors: list[str]) -> PublishInputError:
    more = len(errors) - _ERRORS_SHOWN
    shown = errors[:_ERRORS_SHOWN] + ([f"... and {more} more"] if more > 0 else [])
    return PublishInputError("\n".join(shown))


def parse_jsonl(lines: Iterable[bytes], source: str) -> list[Line]:
    """Every record of a JSONL file; PublishInputError lists the bad lines as `source:line: why`."""
    parsed: list[Line] = []
    errors: list[str] = []
    for number, data in enumerate(lines, start=1):
        try:
            line = parse_line(data.decode("utf-8").rstrip("\r\n"), number)
        except UnicodeDecodeError as exc:
            errors.append(f"{source}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        except ValueError as exc:
            errors.append(f"{source}:{number}: {exc}")
        else:
            if line is not None:
                parsed.append(line)
    if errors:
        raise _problems(errors)
    if not parsed:
        raise PublishInputError(f"{source}: no records")
    return parsed


def value_from_flag(text: str, fmt: Format) -> Line:
    """The `--value` flag as a record: JSON for json/avro, text for string, base64 for bytes."""
    if fmt == "string":
        return Line(0, None, text)
    if fmt == "bytes":
        try:
            return Line(0, None, raw=base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("with format bytes, the value is base64") from None
    try:
        return Line(0, None, json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}); quote strings: '\"text\"'") from None


# --- encoding -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outgoing:
    line: int
    key: bytes | None
    value: bytes
    partition: int | None


def codec_for_publish(
    fmt: Format, schema: Path | None, wire: str, schema_id: int | None
) -> Codec | None:
    """formats.codec_for, with errors that name this command's flags; None for bytes (raw
    values only)."""
    if fmt == "bytes":
        return None
    if fmt == "avro":
        if schema is None:
            raise PublishInputError(
                "format avro needs --schema FILE.avsc (or a binding with a schema)"
            )
        if wire == "confluent" and schema_id is None:
            raise PublishInputError(
                "the Confluent wire format needs --schema-id N (the registry's id)"
            )
    try:
        return codec_for(fmt, schema=schema, wire=wire, schema_id=schema_id)
    except ImportError as exc:  # fastavro is an optional extra
        hint = "format avro needs fastavro: pip install 'restate-stream[avro]'"
        raise PublishInputError(hint) from exc
    except ValueError as exc:
        raise PublishInputError(str(exc)) from exc


def encoder(
    codec: Codec | None, fmt: Format, topic: str, envelope: bool
) -> Callable[[Line], bytes]:
    if envelope and fmt != "json":
        raise PublishInputError("--envelope wraps JSON values: it needs format json")

    def encode(line: Line) -> bytes:
        if line.raw is not None:
            return line.raw
        if codec is None:
            raise ValueError("format bytes takes the value as value_base64")
        if envelope:
            now = datetime.now(UTC).isoformat()
            kind = f"{topic}.published"
            return cloudevent(str(uuid.uuid4()), kind, "restate-stream.publish", now, line.value)
        return codec.encode(line.value)

    return encode


def prepare(
    lines: list[Line], encode: Callable[[Line], bytes], source: str, partitions: int
) -> list[Outgoing]:
    records: list[Outgoing] = []
    errors: list[str] = []
    for line in lines:
        where = f"{source}:{line.number}" if line.number else source
        if line.partition is not None and line.partition >= partitions:
            errors.append(f"{where}: partition {line.partition}: the topic has {partitions}")
            continue
        try:
            value = encode(line)
        except ValueError as exc:  # EncodeError and Avro mismatches are ValueErrors
            errors.append(f"{where}: {exc}")
            continue
        key = check_key(line.key)
        records.append(Outgoing(line.number, key, value, line.partition))
    if errors:
        raise _problems(errors)
    return records


# --- where to: cluster and topic ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    topic: str
    cluster: str  # a cluster's name, or the bootstrap servers given
    properties: dict[str, str]
    binding: Binding | None  # a binding reading the topic: its format is the default


def resolve_target(
    spec: BindingsFile | None, topic: str, cluster: str | None, bootstrap: str | None
) -> Target:
    """--bootstrap, else --cluster, else the topic's declared cluster, else the file's only one."""
    if bootstrap is not None:
        binding = next((b for b in spec.bindings if b.topic == topic), None) if spec else None
        return Target(topic, bootstrap, {"bootstrap.servers": bootstrap}, binding)
    if spec is None:
        raise PublishInputError("no bindings file: pass -f FILE or --bootstrap HOST:PORT")
    if cluster is None:
        declared = spec.topics.get(topic)
        bound = {b.cluster for b in spec.bindings if b.topic == topic}
        if declared is not None:
            cluster = declared.cluster
        elif len(bound) == 1:
            (cluster,) = bound
        elif len(spec.clusters) == 1:
            (cluster,) = spec.clusters
        else:
            names = ", ".join(spec.clusters) or "none"
            raise PublishInputError(f"{spec.path}: which Kafka cluster? pass --cluster ({names})")
    if cluster not in spec.clusters:
        names = ", ".join(spec.clusters) or "none"
        raise PublishInputError(f"{spec.path}: no Kafka cluster {cluster!r} (clusters: {names})")
    binding = next((b for b in spec.bindings if b.topic == topic and b.cluster == cluster), None)
    return Target(topic, cluster, dict(spec.clusters[cluster].properties), binding)


def partitions_of(target: Target) -> int:
    try:
        return partition_count(target.properties, target.topic)
    except TopicNotFoundError:
        raise PublishInputError(
            f"topic {target.topic!r} does not exist on Kafka cluster {target.cluster} "
            "(apply creates the topics a bindings file declares)"
        ) from None
    except ConnectionError as exc:
        raise PublishInputError(f"Kafka cluster {target.cluster}: {exc}") from exc


# --- producing ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PublishResult:
    """What `publish` did: records written per partition, and the ones that failed."""

    topic: str
    cluster: str
    total: int  # records prepared to send
    partitions: dict[int, int]  # partition -> records written
    failures: list[str]  # `source:line: why`
    seconds: float

    @property
    def written(self) -> int:
        return sum(self.partitions.values())

    @property
    def ok(self) -> bool:
        return not self.failures

    def failure_report(self) -> str:
        return str(_problems(self.failures))


# Called after each acknowledged (or failed) record with (done, total).
Progress = Callable[[int, int], None]


async def produce(
    target: Target, records: list[Outgoing], source: str, progress: Progress | None = None
) -> tuple[Counter[int], list[str]]:
    """Records per partition, and the failures as `source:line: why`."""
    producer = create_producer(target.properties)
    written: Counter[int] = Counter()
    failures: list[str] = []
    room = asyncio.Semaphore(_IN_FLIGHT)
    done = 0

    async def send(record: Outgoing) -> None:
        nonlocal done
        try:
            delivery = await producer.send(
                target.topic, record.value, record.key, partition=record.partition
            )
            written[delivery.partition] += 1
        except ProduceError as exc:
            where = f"{source}:{record.line}" if record.line else source
            failures.append(f"{where}: {exc.reason}")
        finally:
            done += 1
            room.release()
            if progress is not None:
                progress(done, len(records))

    try:
        sends = []
        for index, record in enumerate(records):
            await room.acquire()
            if failures:
                # Stop at the first failure: what follows would land after a gap (and a key's
                # later records before its failed one). Records already in flight finish.
                room.release()
                rest = records[index:]
                first = f"{source}:{rest[0].line}" if rest[0].line else source
                failures.append(f"{first}: this and {len(rest) - 1} later record(s) not sent")
                break
            # Tasks start in creation order, and each hands its record to the client before
            # its first await: the file's order is the produce order.
            sends.append(asyncio.create_task(send(record)))
        await asyncio.gather(*sends)
    finally:
        await producer.close()
    return written, failures


def publish(
    spec: BindingsFile | None,
    topic: str,
    *,
    cluster: str | None = None,
    bootstrap: str | None = None,
    key: str | None = None,
    value: str | None = None,
    records_file: Path | None = None,
    fmt: Format | None = None,
    schema: Path | None = None,
    avro_wire: str | None = None,
    schema_id: int | None = None,
    envelope: bool = False,
    progress: Progress | None = None,
) -> PublishResult:
    """Check and encode every record, then send them in order; raises PublishInputError before
    sending anything when a record is bad."""
    target = resolve_target(spec, topic, cluster, bootstrap)
    b = target.binding
    fmt = fmt or (b.format if b else "json")
    schema = schema or (b.schema if b else None)
    wire = avro_wire or (b.avro_wire if b else "plain")
    encode = encoder(codec_for_publish(fmt, schema, wire, schema_id), fmt, topic, envelope)
    if records_file is not None:
        source = "<stdin>" if str(records_file) == "-" else str(records_file)
        try:
            if source == "<stdin>":
                lines = parse_jsonl(sys.stdin.buffer, source)
            else:
                with records_file.open("rb") as f:
                    lines = parse_jsonl(f, source)
        except OSError as exc:
            raise PublishInputError(f"{source}: {exc.strerror or exc}") from exc
    else:
        assert value is not None, "the command line requires --value or --records"
        source = "--value"
        try:
            lines = [dataclasses.replace(value_from_flag(value, fmt), key=_key(key))]
        except ValueError as exc:
            raise PublishInputError(f"--value/--key: {exc}") from exc
    records = prepare(lines, encode, source, partitions_of(target))

    started = time.monotonic()
    written, failures = asyncio.run(produce(target, records, source, progress))
    return PublishResult(
        topic, target.cluster, len(records), dict(written), failures, time.monotonic() - started
    )

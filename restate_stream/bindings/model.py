"""The bindings file as data: frozen dataclasses, plus the error type every check reports with.

Each spec remembers where it came from (line, column, and per-field positions) so that checks
made later, against the app or a live cluster, can point at the exact YAML line too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

from restate_stream.errors import RestateStreamError

Format = Literal["json", "avro", "bytes", "string"]
AvroWire = Literal["plain", "confluent"]
Start = Literal["earliest", "latest"]

FORMATS: tuple[Format, ...] = ("json", "avro", "bytes", "string")
AVRO_WIRES: tuple[AvroWire, ...] = ("plain", "confluent")
STARTS: tuple[Start, ...] = ("earliest", "latest")

DEFAULT_ADMIN_URL = "http://127.0.0.1:9070"
DEFAULT_INGRESS_URL = "http://127.0.0.1:8080"
DEFAULT_WORKER_URI = "http://127.0.0.1:9080"
GROUP_PREFIX = "restate-stream."  # default consumer group of a binding: this + its name

# 1-based (line, column) of a field's value in the YAML file.
Position = tuple[int, int]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class BindingsError(RestateStreamError, ValueError):
    """One or more problems in a bindings file; str() lists them one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class RestateSettings:
    admin_url: str = DEFAULT_ADMIN_URL
    ingress_url: str = DEFAULT_INGRESS_URL


@dataclass(frozen=True)
class KafkaClusterSpec:
    name: str
    properties: dict[str, str]
    line: int = 0


@dataclass(frozen=True)
class TopicSpec:
    name: str
    cluster: str
    # None leaves the choice to the broker's defaults (num.partitions, default.replication.factor).
    partitions: int | None = None
    replication_factor: int | None = None
    config: dict[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class WorkerSpec:
    app: str
    uri: str = DEFAULT_WORKER_URI
    processes: int = 1
    identity_keys: list[str] = field(default_factory=list)
    # Where `app` was written, so an import failure can point at it.
    app_position: Position = (0, 0)


@dataclass(frozen=True)
class RetrySpec:
    max_attempts: int | None = None
    initial_interval: timedelta | None = None
    max_interval: timedelta | None = None
    factor: float | None = None


# Limits of a batch: one invocation body holds at most this many records.
MAX_BATCH_RECORDS = 100_000
MAX_BATCH_WAIT = timedelta(seconds=60)


@dataclass(frozen=True)
class BatchSpec:
    """A batched binding: restate-stream's own consumer delivers one invocation per key per batch.

    A batch is cut when it holds `max_records` records or `max_wait` after its first record.
    """

    max_records: int = 500
    max_wait: timedelta = timedelta(milliseconds=50)

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= MAX_BATCH_RECORDS:
            raise ValueError(f"max_records must be 1..{MAX_BATCH_RECORDS}, got {self.max_records}")
        if not timedelta(0) < self.max_wait <= MAX_BATCH_WAIT:
            raise ValueError(f"max_wait must be > 0 and <= {MAX_BATCH_WAIT}, got {self.max_wait}")


@dataclass(frozen=True)
class Binding:
    name: str
    topic: str
    cluster: str
    service: str
    handler: str
    keyed: bool = True
    format: Format = "json"
    schema: Path | None = None
    avro_wire: AvroWire = "plain"
    # Resolves the writer schema of Confluent-wire records written under another schema id.
    schema_registry: str | None = None
    start: Start = "earliest"
    group: str | None = None
    dead_letter: str | None = None
    retry: RetrySpec | None = None
    paused: bool = False
    # Drop events whose CloudEvents id this object has seen recently (publisher duplicates).
    dedupe: bool = False
    options: dict[str, str] = field(default_factory=dict)
    # Batched delivery by restate-stream's own consumer instead of a Restate subscription.
    batch: BatchSpec | None = None
    line: int = 0
    column: int = 0
    # Where each field was written; fields left to their default are absent.
    positions: dict[str, Position] = field(default_factory=dict, compare=False, repr=False)

    @property
    def consumer_group(self) -> str:
        """The pinned Kafka group.id: how apply finds this binding's subscription again."""
        return self.group or self.options.get("group.id") or f"{GROUP_PREFIX}{self.name}"

    @property
    def sink(self) -> str:
        return f"service://{self.service}/{self.handler}"

    @property
    def source(self) -> str:
        return f"kafka://{self.cluster}/{self.topic}"

    def position(self, field_name: str) -> Position:
        """Where `field_name` was written, else where the binding starts."""
        return self.positions.get(field_name, (self.line, self.column))


@dataclass(frozen=True)
class BindingsFile:
    path: Path
    restate: RestateSettings
    clusters: dict[str, KafkaClusterSpec]
    topics: dict[str, TopicSpec]
    worker: WorkerSpec | None
    bindings: list[Binding]

    def problem(self, index: int, field_name: str, message: str) -> Problem:
        """A Problem about field `field_name` of bindings[index], at the line it was written."""
        line, column = self.bindings[index].position(field_name)
        return Problem(str(self.path), line, column, f"bindings[{index}].{field_name}", message)

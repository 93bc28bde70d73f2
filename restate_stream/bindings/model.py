"""The bindings file as the rest of the code sees it, and the error type every check reports with.

schema.py is the file as written; these are the specs resolved from it (each binding's cluster
and schema path). Each remembers where it came from (line, column, and per-field positions) so
that checks made later, against the app or a live cluster, can point at the YAML line too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import get_args

from connectors.secrets import redact_properties
from restate_stream.bindings._yaml import Position
from restate_stream.bindings.schema import (
    DEFAULT_ADMIN_URL,
    DEFAULT_INGRESS_URL,
    DEFAULT_WORKER_URI,
    MAX_BATCH_RECORDS,
    MAX_BATCH_WAIT,
    AvroWire,
    BatchSpec,
    Delivery,
    Format,
    RestateSettings,
    RetrySpec,
    Start,
    WorkerServer,
)
from restate_stream.errors import ConfigurationError
from restate_stream.windows.settings import WindowSpec

__all__ = [
    "AVRO_WIRES",
    "DEFAULT_ADMIN_URL",
    "DEFAULT_DELIVERY",
    "DEFAULT_INGRESS_URL",
    "DEFAULT_WORKER_URI",
    "FORMATS",
    "GROUP_PREFIX",
    "MAX_BATCH_RECORDS",
    "MAX_BATCH_WAIT",
    "SESSION_TIMEOUT_MS",
    "STARTS",
    "AvroWire",
    "BatchSpec",
    "Binding",
    "BindingsError",
    "BindingsFile",
    "Delivery",
    "Format",
    "KafkaClusterSpec",
    "Position",
    "Problem",
    "RestateSettings",
    "RetrySpec",
    "Start",
    "TopicSpec",
    "WorkerSpec",
    "subscription_consumer_defaults",
]

FORMATS: tuple[Format, ...] = get_args(Format)
AVRO_WIRES: tuple[AvroWire, ...] = get_args(AvroWire)
STARTS: tuple[Start, ...] = get_args(Start)
# A per-record binding's delivery unless it says (docs/bindings.md says why this one).
DEFAULT_DELIVERY: Delivery = "subscription"
GROUP_PREFIX = "restate-stream."  # default consumer group of a binding: this + its name

# A consumer that dies without leaving its group (SIGKILL, OOM, a lost Restate node) holds its
# partitions until the group coordinator's session for it times out: 10 s instead of
# librdkafka's 45 s, for a per-record binding's Restate subscription and a batched binding's
# own consumer alike. Lower risks rebalances when a live consumer misses heartbeats (a long GC
# pause, a starved host); brokers refuse anything below group.min.session.timeout.ms (6 s).
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 3_000  # librdkafka's own default, and at most a third of the session


def subscription_consumer_defaults(options: Mapping[str, str]) -> dict[str, str]:
    """The consumer options restate-stream adds to a binding's Restate subscription unless its
    `options:` set them (the caller merges `options` over these): the session timeout above,
    and a heartbeat interval of 3 s or a third of the session timeout, whichever is shorter."""
    defaults: dict[str, str] = {}
    session = options.get("session.timeout.ms")
    if session is None:
        # A heartbeat set alone keeps its session at least three heartbeats long.
        try:
            heartbeat_ms = int(options.get("heartbeat.interval.ms", "0"))
        except ValueError:
            heartbeat_ms = 0
        defaults["session.timeout.ms"] = str(max(SESSION_TIMEOUT_MS, 3 * heartbeat_ms))
    if "heartbeat.interval.ms" not in options:
        try:
            session_ms = SESSION_TIMEOUT_MS if session is None else int(session)
        except ValueError:  # librdkafka reports the bad value when Restate creates the consumer
            session_ms = SESSION_TIMEOUT_MS
        defaults["heartbeat.interval.ms"] = str(max(1, min(HEARTBEAT_INTERVAL_MS, session_ms // 3)))
    return defaults


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


class BindingsError(ConfigurationError, ValueError):
    """One or more problems in a bindings file; str() lists them one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class KafkaClusterSpec:
    name: str
    properties: dict[str, str]
    line: int = 0

    def __repr__(self) -> str:  # a repr ends up in logs and tracebacks: no secrets
        shown = redact_properties(self.properties)
        return f"KafkaClusterSpec(name={self.name!r}, properties={shown!r}, line={self.line})"


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
    server: WorkerServer | None = None  # None: the runtime's default h2c server
    metrics_port: int | None = None  # the worker's /metrics, off when None
    metrics_host: str | None = None  # where /metrics listens; None: loopback
    log_format: str = "text"  # "text" for people, "json": one object per line


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
    # As written; None: the default (a batched binding is always consumer-delivered).
    delivery: Delivery | None = None
    # delivery: consumer: how long Restate keeps a record's idempotency entry (None: the
    # bound handler's default, runtime/bound.py's REDRIVE_WINDOW).
    idempotency_retention: timedelta | None = None
    # Served by restate-stream's own object named after the binding (service = name).
    window: WindowSpec | None = None
    table: bool = False
    # Not written in the file: whether the app's target of this per-record binding keeps a
    # high-water offset (an exclusive object handler: runtime/bound.py `with_high_water`),
    # known once the app is imported; its consumer's sends then carry no idempotency key.
    keeps_high_water: bool = False
    line: int = 0
    column: int = 0
    # Where each field was written; fields left to their default are absent.
    positions: dict[str, Position] = field(default_factory=dict, compare=False, repr=False)

    @property
    def consumer_group(self) -> str:
        """The pinned Kafka group.id: how apply finds this binding's subscription again."""
        return self.group or self.options.get("group.id") or f"{GROUP_PREFIX}{self.name}"

    @property
    def delivered_by(self) -> Delivery:
        """Who reads the topic: "consumer" (restate-stream's own, in the worker) for batched
        bindings and `delivery: consumer`, else a Restate subscription."""
        if self.batch is not None:
            return "consumer"
        return self.delivery or DEFAULT_DELIVERY

    @property
    def own_consumer(self) -> bool:
        """Read by restate-stream's consumer in the worker: no Restate subscription."""
        return self.delivered_by == "consumer"

    @property
    def provided(self) -> bool:
        """Served by restate-stream's own object (a window or a table), not the app's."""
        return self.window is not None or self.table

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

    def binding_named(self, name: str, error: Callable[[str], Exception]) -> Binding:
        """Binding `name`; else `error` of a message naming the file and its bindings."""
        for binding in self.bindings:
            if binding.name == name:
                return binding
        names = ", ".join(b.name for b in self.bindings) or "none"
        raise error(f"{self.path}: no binding named {name!r} (bindings: {names})")

    def problem(self, index: int, field_name: str, message: str) -> Problem:
        """A Problem about field `field_name` of bindings[index], at the line it was written."""
        line, column = self.bindings[index].position(field_name)
        return Problem(str(self.path), line, column, f"bindings[{index}].{field_name}", message)

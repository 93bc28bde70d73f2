"""The bindings file's shape as pydantic models: keys, types, ranges and the rules between fields.

Each value type says in words what it expects (`Expect`); a problem reads
`expected <that>; got <what was written>`. Rules within one binding are validators here;
rules across sections (which cluster, shared consumer groups) are checked in loader.py,
which sees the whole file.

Adding an option is adding a field: a sub-mapping like `retry:` is one more `_Spec` model; a
feature with settings of its own keeps them in its package (windows/settings.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from restate_stream.bindings._yaml import Loc
from restate_stream.bindings.values import (
    DEFAULT_ADMIN_URL,
    DEFAULT_INGRESS_URL,
    DEFAULT_WORKER_URI,
    AppRef,
    AvroWire,
    BindingName,
    ClusterName,
    ClusterProperties,
    Duration,
    Expect,
    Format,
    HandlerRef,
    IdentityKey,
    PositiveInt,
    SpecModel,
    Start,
    Text,
    TopicName,
    Url,
    Value,
    WorkerServer,
    parse_duration,
    rule,
)
from restate_stream.tables.settings import table_format_problem
from restate_stream.windows.settings import WindowSpec

# Who reads a binding's topic: restate-stream's own consumer (sends through the ingress) or a
# Restate subscription (configured through the admin API).
Delivery = Literal["consumer", "subscription"]

__all__ = [  # what other modules take from here
    "DEFAULT_ADMIN_URL",
    "DEFAULT_INGRESS_URL",
    "DEFAULT_WORKER_URI",
    "AvroWire",
    "BatchPer",
    "BatchSpec",
    "Delivery",
    "Format",
    "RestateSettings",
    "RetrySpec",
    "Start",
    "WorkerServer",
    "parse_duration",
]


class _Spec(SpecModel, BaseModel):  # BaseModel named again: linters see a pydantic model
    """A mapping of the file (SpecModel: only the keys declared, each of its declared type)."""


class RestateSettings(_Spec):
    admin_url: Url = DEFAULT_ADMIN_URL
    ingress_url: Url = DEFAULT_INGRESS_URL


class RetrySpec(_Spec):
    max_attempts: PositiveInt | None = None
    initial_interval: Duration | None = None
    max_interval: Duration | None = None
    factor: Annotated[float, Field(ge=1.0), Expect("a number >= 1.0")] | None = None

    @field_validator("max_interval")
    @classmethod
    def _not_below_initial(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        initial = info.data.get("initial_interval")
        if value is not None and initial is not None and value < initial:
            raise rule("max_interval must not be shorter than initial_interval")
        return value


# Limits of a batch: one invocation body holds at most this many records.
MAX_BATCH_RECORDS = 100_000
MAX_BATCH_WAIT = timedelta(seconds=60)


BatchPer = Literal["key", "partition"]


def _within_batch_wait(wait: timedelta) -> timedelta:
    if wait > MAX_BATCH_WAIT:
        raise ValueError("too long")
    return wait


# Bounds as types, not rules: a problem then shows the value as the reader does (never the
# value of an environment variable).
BatchRecords = Annotated[
    int,
    Field(ge=1, le=MAX_BATCH_RECORDS),
    Expect(f"an integer from 1 to {MAX_BATCH_RECORDS} (records per batch)"),
]
BatchWait = Annotated[
    Duration,
    AfterValidator(_within_batch_wait),
    Expect(f"a duration with a unit, at most {MAX_BATCH_WAIT.total_seconds():g}s, like 50ms"),
]


# A record read again after a crash or a rebalance is recognised only while its idempotency
# entry is kept: re-reads come within seconds (session timeout, restart), so a minute at least.
MIN_RECORD_RETENTION = timedelta(minutes=1)


def _at_least_a_minute(retention: timedelta) -> timedelta:
    if retention < MIN_RECORD_RETENTION:
        raise ValueError("too short")
    return retention


RecordRetention = Annotated[
    Duration,
    AfterValidator(_at_least_a_minute),
    Expect("a duration with a unit, at least 1m, like 10m or 24h"),
]


class BatchSpec(_Spec):
    """A batched binding: restate-stream's own consumer delivers one invocation per object
    per batch, cut when it holds `max_records` records or `max_wait` after its first record.
    `per` says what an object is: a record key (default) or a source partition (one object
    per topic partition, whose handler sees many keys: for aggregations and many keys)."""

    max_records: BatchRecords = 500
    # Short: in a stream a busy key's records join its next send while its previous invocation
    # runs, so sends grow with load rather than with waiting, and a cut's wait mostly adds
    # latency (against 50 ms: p50 up to 25 ms lower, throughput alike: docs/benchmarks.md).
    max_wait: BatchWait = timedelta(milliseconds=10)
    per: Annotated[BatchPer, Expect('"key" or "partition"')] = "key"


class KafkaSection(_Spec):
    clusters: Annotated[
        dict[ClusterName, ClusterProperties],
        Field(min_length=1),
        Expect("at least one cluster (a mapping of cluster name -> librdkafka properties)"),
    ]


class TopicEntry(_Spec):
    # None: the only cluster; partitions and replication None: the broker's defaults.
    cluster: Annotated[Text, Expect("a cluster name")] | None = None
    partitions: PositiveInt | None = None
    replication_factor: PositiveInt | None = None
    config: Annotated[dict[str, Value], Expect("a mapping of topic configs")] = {}


class WorkerEntry(_Spec):
    app: AppRef
    uri: Url = DEFAULT_WORKER_URI
    processes: PositiveInt = 1
    server: WorkerServer | None = None  # None: runtime/serving.py's DEFAULT_SERVER
    # Prometheus metrics of the serving processes at http://<metrics_host>:<port>/metrics.
    metrics_port: Annotated[int, Field(ge=1, le=65535), Expect("a port (1-65535)")] | None = None
    # Loopback unless exposed on purpose (0.0.0.0 for a scraper in another container or pod).
    metrics_host: Annotated[Text, Expect("an address to listen on, e.g. 0.0.0.0")] | None = None
    log_format: Annotated[Literal["text", "json"], Expect('"text" or "json"')] = "text"
    identity_keys: Annotated[
        list[IdentityKey], Expect("a list of Restate public keys (publickeyv1_...)")
    ] = []


class BindingEntry(_Spec):
    """One item of `bindings:`. Validators see the fields declared above them (info.data);
    one that failed is absent there, so a bad value never causes a second problem."""

    name: BindingName
    topic: TopicName
    cluster: Annotated[Text, Expect("a cluster name")] | None = None
    # None only for a window or table binding, which restate-stream's own object serves.
    handler: HandlerRef | None = None
    keyed: bool = True
    format: Format = "json"
    schema_: Annotated[Text, Expect("a path to an Avro schema (.avsc) file")] | None = Field(
        None, alias="schema", validate_default=True
    )
    avro_wire: AvroWire = "plain"
    schema_registry: Url | None = None
    start: Start = "earliest"
    group: Annotated[Text, Expect("a consumer group id")] | None = None
    dead_letter: TopicName | None = None
    retry: RetrySpec | None = None
    paused: bool = False
    batch: BatchSpec | None = None
    delivery: Annotated[Delivery, Expect('"consumer" or "subscription"')] | None = None
    # How long Restate keeps each record's idempotency entry (delivery: consumer only).
    idempotency_retention: RecordRetention | None = None
    dedupe: bool = False
    options: Annotated[
        dict[str, Value], Expect("a mapping of subscription options (string -> string)")
    ] = {}
    window: WindowSpec | None = None
    table: bool = False

    @field_validator("schema_")
    @classmethod
    def _schema_fits_format(cls, schema: str | None, info: ValidationInfo) -> str | None:
        format_ = info.data.get("format")
        if schema is None:
            if format_ == "avro":
                raise rule(
                    "format: avro needs schema: (an .avsc file, relative to this file's directory)"
                )
            return None
        if format_ not in (None, "avro"):
            raise rule(f"schema applies only to format: avro (format is {format_})")
        path = Path(info.context["base"] if info.context else ".") / schema
        if format_ == "avro" and not path.is_file():
            raise rule(f"schema file not found: {path}")
        return schema

    @field_validator("avro_wire")
    @classmethod
    def _avro_wire_fits_format(cls, wire: AvroWire, info: ValidationInfo) -> AvroWire:
        format_ = info.data.get("format")
        if format_ not in (None, "avro"):
            raise rule(f"avro_wire applies only to format: avro (format is {format_})")
        return wire

    @field_validator("schema_registry")
    @classmethod
    def _registry_fits_wire(cls, url: str | None, info: ValidationInfo) -> str | None:
        format_, wire = info.data.get("format"), info.data.get("avro_wire")
        known = url is not None and format_ is not None and wire is not None
        if known and (format_, wire) != ("avro", "confluent"):
            raise rule(
                "schema_registry applies only to format: avro with avro_wire: confluent "
                "(it resolves the schema ids those records carry)"
            )
        return url

    @field_validator("dead_letter")
    @classmethod
    def _dead_letter_elsewhere(cls, topic: str | None, info: ValidationInfo) -> str | None:
        if topic is not None and topic == info.data.get("topic"):
            raise rule("the dead-letter topic must differ from the binding's topic")
        return topic

    @field_validator("delivery")
    @classmethod
    def _batches_come_from_the_consumer(
        cls, delivery: Delivery | None, info: ValidationInfo
    ) -> Delivery | None:
        if delivery == "subscription" and info.data.get("batch") is not None:
            raise rule(
                "a batched binding is delivered by restate-stream's own consumer; "
                "drop delivery: subscription or the batch section"
            )
        return delivery

    @field_validator("idempotency_retention")
    @classmethod
    def _retention_of_consumer_sends(
        cls, retention: timedelta | None, info: ValidationInfo
    ) -> timedelta | None:
        if retention is not None and (
            info.data.get("batch") is not None or info.data.get("delivery") != "consumer"
        ):
            raise rule(
                "idempotency_retention applies only to a per-record binding with delivery: "
                "consumer (how long Restate keeps each record's idempotency key)"
            )
        return retention

    @field_validator("dedupe")
    @classmethod
    def _dedupe_needs_json(cls, dedupe: bool, info: ValidationInfo) -> bool:
        if dedupe and info.data.get("batch") is not None:
            raise rule(
                "dedupe is not available on a batched binding (the high-water offset already "
                "drops redelivered records)"
            )
        if dedupe and info.data.get("format", "json") != "json":
            raise rule(
                "dedupe needs format json: the event id travels in a CloudEvents JSON envelope"
            )
        return dedupe

    @field_validator("options")
    @classmethod
    def _no_subscription_options_when_batched(
        cls, options: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        if set(options) - {"group.id"}:
            if info.data.get("batch") is not None:
                what = "a batched binding"
            elif info.data.get("delivery") == "consumer":
                what = "a binding with delivery: consumer"
            else:
                return options
            raise rule(
                f"{what} has no Restate subscription, so it takes no subscription "
                "options (group.id aside)"
            )
        return options

    @model_validator(mode="after")
    def _served_by_handler_or_feature(self) -> BindingEntry:
        feature = "window" if self.window is not None else "table" if self.table else None
        if feature is None:
            if self.handler is None:
                raise rule(
                    "missing required field 'handler' (expected \"Service/handler\" like "
                    "driver-digital-twin/handle_location, or a window: or table: section)",
                    "handler",
                )
            return self
        if self.window is not None and self.table:
            raise rule("a binding is a window or a table, not both", "table")
        _served_by_restate_stream(self, feature)
        if self.window is not None and self.window.to == self.topic:
            # Each emission would be a record of the window again: a loop that never ends.
            raise rule(
                "the results topic must differ from the binding's topic (each result would "
                "be counted again)",
                "window",
                "to",
            )
        if self.window is not None and self.window.late == "dead_letter" and not self.dead_letter:
            raise rule("late: dead_letter needs the binding's dead_letter: topic", "window", "late")
        return self

    @model_validator(mode="after")
    def _options_leave_own_fields(self) -> BindingEntry:
        for option, own_field in (("group.id", "group"), ("auto.offset.reset", "start")):
            if option in self.options and own_field in self.model_fields_set:
                raise rule(
                    f"{option} is set by {own_field}:; drop it from options", "options", option
                )
        return self


def _served_by_restate_stream(entry: BindingEntry, feature: str) -> None:
    """The rules of a binding served by restate-stream's own object (a window or a table)."""
    if entry.handler is not None:
        raise rule(
            f"a {feature} binding is served by restate-stream's own object, named after the "
            f"binding ({entry.name}); drop handler:",
            "handler",
        )
    if not entry.keyed:
        raise rule(f"a {feature} binding is keyed: its state is per record key", "keyed")
    if entry.batch is not None and entry.batch.per != "key":
        # Its state is per record key: a batch must hold one key's records.
        raise rule(f"a batched {feature} binding takes batches per: key", "batch", "per")
    if not entry.name[0].isalpha():
        raise rule(
            f"a {feature} binding's name is its object's Restate service name, which must "
            "start with a letter",
            "name",
        )
    if entry.table and (problem := table_format_problem(entry.format)) is not None:
        raise rule(problem, "format")


class FileSpec(_Spec):
    restate: RestateSettings = RestateSettings()
    kafka: Annotated[KafkaSection, Expect("a mapping with clusters:")]
    topics: Annotated[
        dict[TopicName, TopicEntry | None],
        Expect("a mapping of topic name -> {cluster, partitions, replication_factor, config}"),
    ] = {}
    worker: WorkerEntry | None = None
    bindings: Annotated[
        list[Annotated[BindingEntry, Expect("a mapping (a binding)")]],
        Expect("a list of bindings"),
    ] = []


# Fields named apart from their key (the key is a BaseModel attribute): name -> key.
def _all_models(base: type[BaseModel]) -> list[type[BaseModel]]:
    return [m for sub in base.__subclasses__() for m in (sub, *_all_models(sub))]


FIELD_KEYS = {
    name: field.alias
    for model in _all_models(SpecModel)
    for name, field in model.model_fields.items()
    if field.alias
}


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """`annotation` without Annotated[...] and `| None`, and the metadata taken off it."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *more = get_args(annotation)
            metadata = [*more, *metadata]
        elif origin in (Union, UnionType) and type(None) in get_args(annotation):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation, metadata


def _model_fields(annotation: Any) -> dict[str, Any] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {f.alias or name: f for name, f in annotation.model_fields.items()}
    return None


def _type_at(loc: Loc) -> tuple[Any, list[Any]]:
    """The type of the value at `loc` (a pydantic error location) and its metadata."""
    annotation: Any = FileSpec
    metadata: list[Any] = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        annotation, _ = _unwrap(annotation)
        fields = _model_fields(annotation) or {}
        if part in fields:
            annotation, metadata = fields[str(part)].annotation, fields[str(part)].metadata
        elif get_origin(annotation) in (dict, list):
            is_key = parts[:1] == ["[key]"]  # ("name", "[key]"): the key itself
            annotation, metadata = get_args(annotation)[0 if is_key else -1], []
            del parts[:is_key]
        else:
            return None, []
    annotation, inner = _unwrap(annotation)
    return annotation, [*metadata, *inner]


def expected_at(loc: Loc) -> str | None:
    """What the value at `loc` should be, in words."""
    annotation, metadata = _type_at(loc)
    expects = [m.text for m in metadata if isinstance(m, Expect)]
    if expects:
        return expects[-1]
    if annotation is bool:
        return "true or false"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(get_args(annotation))
    return "a mapping" if _model_fields(annotation) is not None else None


def keys_at(loc: Loc) -> list[str]:
    """The keys allowed in the mapping at `loc`."""
    return list(_model_fields(_type_at(loc)[0]) or ())

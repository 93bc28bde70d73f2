"""bindings.yaml -> BindingsFile, with `${VAR}` interpolation and line-accurate validation.

The YAML is composed into nodes and walked here instead of `yaml.safe_load`, so every value
keeps its position: each problem names file, line, column and field path. All problems are
collected in one pass and raised together as one BindingsError.

Interpolation applies to scalar values (not keys): `${VAR}`, `${VAR:-default}` (default when
VAR is unset or empty; no nesting inside the default), and `$${` for a literal `${`. A typed
field (integer, boolean, duration...) holding a reference reads the substituted text as YAML
would, so `partitions: ${PARTITIONS:-4}` is the integer 4.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from restate_stream.bindings.model import (
    AVRO_WIRES,
    DEFAULT_WORKER_URI,
    FORMATS,
    MAX_BATCH_RECORDS,
    MAX_BATCH_WAIT,
    STARTS,
    AvroWire,
    BatchSpec,
    Binding,
    BindingsError,
    BindingsFile,
    Format,
    KafkaClusterSpec,
    Position,
    Problem,
    RestateSettings,
    RetrySpec,
    Start,
    TopicSpec,
    WorkerSpec,
)

T = TypeVar("T")

_TOP_KEYS = ("restate", "kafka", "topics", "worker", "bindings")
_RESTATE_KEYS = ("admin_url", "ingress_url")
_KAFKA_KEYS = ("clusters",)
_TOPIC_KEYS = ("cluster", "partitions", "replication_factor", "config")
_WORKER_KEYS = ("app", "uri", "processes", "identity_keys")
_BATCH_KEYS = ("max_records", "max_wait")
_RETRY_KEYS = ("max_attempts", "initial_interval", "max_interval", "factor")
_BINDING_KEYS = (
    "name",
    "topic",
    "cluster",
    "handler",
    "keyed",
    "format",
    "schema",
    "avro_wire",
    "schema_registry",
    "start",
    "group",
    "dead_letter",
    "retry",
    "paused",
    "dedupe",
    "options",
    "batch",
)

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_REFERENCE_BODY = re.compile(r"(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
# Restate turns cluster names into hosts of kafka:// URIs, so they must be hostname labels.
_HOSTNAME_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_BINDING_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_KAFKA_TOPIC = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}")
_HANDLER = re.compile(r"[^/\s]+/[^/\s]+")
_APP_REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_IDENTITY_KEY = re.compile(r"publickeyv1_\S+")
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BOOTSTRAP_KEYS = ("bootstrap.servers", "metadata.broker.list")

# A unit is required: a bare 100 read as seconds, when 100ms was meant, is a silent 1000x.
_DURATION_EXPECTED = "a duration with a unit, like 200ms, 1.5s, 10s, 2m, 1h"
_TOPIC_EXPECTED = "a Kafka topic name (letters, digits, '.', '_' and '-', at most 249 characters)"
_NAME_EXPECTED = (
    "a name of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
)
_HANDLER_EXPECTED = '"Service/handler" like driver-digital-twin/handle_location'
_APP_EXPECTED = '"module.path:attribute" like examples.food_ordering.app:app'


def load_bindings(path: str | Path, env: Mapping[str, str] | None = None) -> BindingsFile:
    """Read and validate a bindings file; raises BindingsError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = Problem(str(path), 1, 1, "", f"cannot read the file: {reason}")
        raise BindingsError([problem]) from exc
    return parse_bindings(text, path, env)


def parse_bindings(text: str, path: Path, env: Mapping[str, str] | None = None) -> BindingsFile:
    """Validate YAML `text` as if read from `path` (relative schema paths resolve from its dir)."""
    return _Parser(Path(path), os.environ if env is None else env).parse(text)


def parse_duration(value: Any) -> timedelta | None:
    """A timedelta from 200ms / 1.5s / 10s / 2m / 1h; None for anything else (bare numbers too)."""
    if not isinstance(value, str) or not (match := _DURATION.fullmatch(value.strip())):
        return None
    return timedelta(seconds=float(match["number"]) * _UNIT_SECONDS[match["unit"]])


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _position(node: yaml.Node) -> Position:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a scalar"


@dataclass(frozen=True)
class _Scalar:
    value: Any  # typed as YAML types it (substituted text is retyped)
    text: str  # as written, after substitution
    tag: str  # the tag YAML gave the written text

    def describe(self) -> str:
        if self.value is None:
            return "null"
        if isinstance(self.value, bool):
            return f"{self.text} (a boolean)"
        if isinstance(self.value, int | float):
            return self.text
        return repr(self.text)


@dataclass(frozen=True)
class _Map:
    node: yaml.Node
    path: str
    items: dict[str, tuple[yaml.Node, yaml.Node]]  # key -> (key node, value node)

    def field(self, key: str) -> str:
        return _join(self.path, key)

    def value(self, key: str) -> yaml.Node | None:
        entry = self.items.get(key)
        return entry[1] if entry else None


class _Parser:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.problems: list[Problem] = []
        self.declared_topics: set[str] = set()  # written under topics:, valid or not
        self._constructor = SafeConstructor()
        self._resolver = Resolver()

    # --- reporting ------------------------------------------------------------------------

    def report(self, where: yaml.Node | Position, field: str, message: str) -> None:
        line, column = _position(where) if isinstance(where, yaml.Node) else where
        self.problems.append(Problem(str(self.path), line, column, field, message))

    def missing(self, m: _Map, key: str, expected: str) -> None:
        self.report(m.node, m.field(key), f"missing required field '{key}' (expected {expected})")

    # --- structure ------------------------------------------------------------------------

    def mapping(
        self, node: yaml.Node | None, path: str, keys: Sequence[str] | None, expected: str
    ) -> _Map | None:
        """The entries of a mapping node; None if absent, null, or not a mapping (reported).

        With `keys`, any other key is reported as unknown (with a suggestion when one is close).
        """
        if node is None or _is_null(node):
            return None
        if not isinstance(node, yaml.MappingNode):
            got = self.scalar_of(node).describe() if isinstance(node, yaml.ScalarNode) else None
            self.report(node, path, f"expected {expected}; got {got or _kind(node)}")
            return None
        items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node, merged in self.entries(node, path, set()):
            if not isinstance(key_node, yaml.ScalarNode) or _is_null(key_node):
                self.report(key_node, path, f"expected a string key; got {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key in items:
                if not merged:
                    first = _position(items[key][0])[0]
                    message = f"duplicate key (first at line {first})"
                    self.report(key_node, _join(path, key), message)
                continue  # a merged key loses to one written here (or merged earlier)
            if keys is not None and key not in keys:
                hint = _suggest(key, keys) or f"; expected one of {', '.join(keys)}"
                self.report(key_node, _join(path, key), f"unknown key '{key}'{hint}")
                continue
            items[key] = (key_node, value_node)
        return _Map(node, path, items)

    def entries(
        self, node: yaml.MappingNode, path: str, seen: set[int]
    ) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """(key, value, merged) pairs: the written ones first, then those from `<<` merge keys.

        Done here rather than with SafeConstructor.flatten_mapping, which rewrites the (possibly
        aliased, so shared) node and mixes merged keys with written ones.
        """
        seen = seen | {id(node)}
        own: list[tuple[yaml.Node, yaml.Node, bool]] = []
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node, False))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode) or id(source) in seen:
                    message = "expected a mapping (or list of mappings) to merge with <<"
                    self.report(source, path, message)
                    continue
                merged.extend((k, v, True) for k, v, _ in self.entries(source, path, seen))
        return own + merged

    # --- scalars --------------------------------------------------------------------------

    def interpolate(self, node: yaml.Node, field: str, text: str) -> str | None:
        out: list[str] = []
        ok = True
        end = 0
        for match in _REFERENCE.finditer(text):
            out.append(text[end : match.start()])
            end = match.end()
            if match.group(0) == "$${":
                out.append("${")
                continue
            body = match["body"]
            ref = _REFERENCE_BODY.fullmatch(body) if body is not None else None
            if ref is None:
                self.report(
                    node,
                    field,
                    f"malformed reference {match.group(0)!r}: expected ${{VAR}} or "
                    "${VAR:-default} (write $${ for a literal ${)",
                )
                ok = False
                continue
            var, default = ref["var"], ref["default"]
            value = self.env.get(var)
            if default is not None and not value:
                value = default
            if value is None:
                self.report(
                    node,
                    field,
                    f"environment variable {var} is not set and has no default "
                    f"(set it, or write ${{{var}:-default}})",
                )
                ok = False
                continue
            out.append(value)
        out.append(text[end:])
        return "".join(out) if ok else None

    def scalar_of(self, node: yaml.ScalarNode) -> _Scalar:
        """A scalar as YAML types it, without interpolation."""
        text = str(node.value)
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError):
            value = text
        return _Scalar(value, text, node.tag)

    def scalar(self, node: yaml.Node, field: str, expected: str) -> _Scalar | None:
        """The interpolated scalar; None if it is not a scalar or a reference fails (reported)."""
        if not isinstance(node, yaml.ScalarNode):
            self.report(node, field, f"expected {expected}; got {_kind(node)}")
            return None
        if node.tag != _STR or "$" not in node.value:
            return self.scalar_of(node)
        text = self.interpolate(node, field, str(node.value))
        if text is None:
            return None
        if text == node.value:
            return _Scalar(text, text, _STR)
        tag: str = self._resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        retyped = self.scalar_of(yaml.ScalarNode(tag, text, node.start_mark, node.end_mark))
        return _Scalar(retyped.value, text, _STR)

    def typed(
        self,
        node: yaml.Node | None,
        field: str,
        expected: str,
        convert: Callable[[_Scalar], T | None],
        *,
        required: bool = False,
    ) -> T | None:
        """A scalar converted by `convert` (None: not acceptable); null is absent unless required.

        Absent, invalid (reported) and null all give None: whether a field is required is checked
        on the key, so a bad value is never also reported missing.
        """
        if node is None:
            return None
        scalar = self.scalar(node, field, expected)
        if scalar is None or (scalar.value is None and not required):
            return None
        result = convert(scalar) if scalar.value is not None else None
        if result is None:
            self.report(node, field, f"expected {expected}; got {scalar.describe()}")
        return result

    def string(
        self,
        node: yaml.Node | None,
        field: str,
        expected: str = "a string",
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        allow_empty: bool = False,
    ) -> str | None:
        # Numbers and dates are taken as written: `topic: 2024` means the topic "2024".
        def convert(scalar: _Scalar) -> str | None:
            text = scalar.text
            if isinstance(scalar.value, bool) and scalar.tag != _STR:
                text = "true" if scalar.value else "false"
            if not (text or allow_empty) or (pattern is not None and not pattern.fullmatch(text)):
                return None
            return text

        return self.typed(node, field, expected, convert, required=required)

    def integer(self, node: yaml.Node | None, field: str, minimum: int) -> int | None:
        def convert(scalar: _Scalar) -> int | None:
            value = scalar.value
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
            return value if ok else None

        return self.typed(node, field, f"an integer >= {minimum}", convert)

    def number(self, node: yaml.Node | None, field: str, minimum: float) -> float | None:
        def convert(scalar: _Scalar) -> float | None:
            value = scalar.value
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok and value >= minimum else None

        return self.typed(node, field, f"a number >= {minimum}", convert)

    def boolean(self, node: yaml.Node | None, field: str) -> bool | None:
        def convert(scalar: _Scalar) -> bool | None:
            return scalar.value if isinstance(scalar.value, bool) else None

        return self.typed(node, field, "true or false", convert)

    def duration(self, node: yaml.Node | None, field: str) -> timedelta | None:
        def convert(scalar: _Scalar) -> timedelta | None:
            value = parse_duration(scalar.value)
            return value if value is not None and value > timedelta(0) else None

        return self.typed(node, field, _DURATION_EXPECTED, convert)

    def choice(self, node: yaml.Node | None, field: str, choices: Sequence[T]) -> T | None:
        def convert(scalar: _Scalar) -> T | None:
            return next((c for c in choices if c == scalar.text), None)

        return self.typed(node, field, f"one of {', '.join(map(str, choices))}", convert)

    def url(self, node: yaml.Node | None, field: str) -> str | None:
        def convert(scalar: _Scalar) -> str | None:
            parts = urlsplit(scalar.text)
            return scalar.text if parts.scheme in ("http", "https") and parts.netloc else None

        return self.typed(node, field, "an http:// or https:// URL", convert)

    def topic_name(
        self, node: yaml.Node | None, field: str, *, required: bool = False
    ) -> str | None:
        return self.string(node, field, _TOPIC_EXPECTED, required=required, pattern=_KAFKA_TOPIC)

    def string_map(self, node: yaml.Node | None, path: str, expected: str) -> dict[str, str]:
        return self.string_values(self.mapping(node, path, None, expected))

    def string_values(self, m: _Map | None) -> dict[str, str]:
        """A flat string -> string mapping; booleans become "true"/"false", numbers their text."""
        if m is None:
            return {}
        result: dict[str, str] = {}
        for key, (_, value_node) in m.items.items():
            field = m.field(key)
            value = self.string(
                value_node, field, "a string value", required=True, allow_empty=True
            )
            if value is not None:
                result[key] = value
        return result

    def string_list(
        self, node: yaml.Node | None, path: str, expected: str, pattern: re.Pattern[str]
    ) -> list[str]:
        if node is None or _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.report(node, path, f"expected a list of {expected}; got {_kind(node)}")
            return []
        items = [
            self.string(item, f"{path}[{i}]", expected, required=True, pattern=pattern)
            for i, item in enumerate(node.value)
        ]
        return [item for item in items if item is not None]

    # --- sections -------------------------------------------------------------------------

    def parse(self, text: str) -> BindingsFile:
        root = self.compose(text)
        expected = "a mapping at the top level (with kafka: and bindings:)"
        top = self.mapping(root, "", _TOP_KEYS, expected)
        if root is not None and _is_null(root):
            self.report(root, "", f"expected {expected}; got null")
        if top is None:
            raise BindingsError(self.problems)
        restate = self.restate(top)
        clusters = self.kafka(top)
        topics = self.topics(top, clusters)
        worker = self.worker(top)
        bindings = self.bindings(top, clusters, topics)
        if self.problems:
            raise BindingsError(self.problems)
        return BindingsFile(self.path, restate, clusters, topics, worker, bindings)

    def compose(self, text: str) -> yaml.Node | None:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            context = ""
            if exc.context:
                at = exc.context_mark
                place = f" at line {at.line + 1}, column {at.column + 1}" if at else ""
                context = f" ({exc.context}{place})"
            self.report(where, "", f"invalid YAML: {exc.problem}{context}")
            return None
        except yaml.YAMLError as exc:
            self.report((1, 1), "", f"invalid YAML: {exc}")
            return None
        if root is None:
            self.report(
                (1, 1), "", "the file is empty; expected a mapping with kafka: and bindings:"
            )
        return root

    def restate(self, top: _Map) -> RestateSettings:
        m = self.mapping(top.value("restate"), "restate", _RESTATE_KEYS, "a mapping")
        defaults = RestateSettings()
        if m is None:
            return defaults
        admin = self.url(m.value("admin_url"), m.field("admin_url"))
        ingress = self.url(m.value("ingress_url"), m.field("ingress_url"))
        return RestateSettings(admin or defaults.admin_url, ingress or defaults.ingress_url)

    def kafka(self, top: _Map) -> dict[str, KafkaClusterSpec]:
        node = top.value("kafka")
        expected = "a mapping with clusters:"
        kafka = self.mapping(node, "kafka", _KAFKA_KEYS, expected)
        if kafka is None:
            if node is None or _is_null(node):
                self.missing(top, "kafka", expected)
            return {}
        clusters_node = kafka.value("clusters")
        expected = "a mapping of cluster name -> librdkafka properties"
        m = self.mapping(clusters_node, "kafka.clusters", None, expected)
        if m is None or not m.items:
            if clusters_node is None or _is_null(clusters_node) or m is not None:
                where = clusters_node if clusters_node is not None else kafka.node
                self.report(where, "kafka.clusters", f"expected at least one cluster ({expected})")
            return {}
        clusters: dict[str, KafkaClusterSpec] = {}
        for name, (key_node, value_node) in m.items.items():
            path = m.field(name)
            if not _HOSTNAME_LABEL.fullmatch(name):
                self.report(
                    key_node,
                    path,
                    "cluster names must be hostname labels, as Restate requires: lowercase "
                    "letters, digits and '-', 1 to 63 characters, not starting or ending with "
                    f"'-'; got {name!r}",
                )
            props = self.mapping(value_node, path, None, "a mapping of librdkafka properties")
            properties = self.string_values(props)
            if props is not None or _is_null(value_node):
                bootstrap = [props.value(key) for key in _BOOTSTRAP_KEYS] if props else []
                if not any(node is not None for node in bootstrap):
                    self.report(
                        props.node if props else key_node,
                        path,
                        "missing required property 'bootstrap.servers' (or "
                        "'metadata.broker.list'), like bootstrap.servers: 127.0.0.1:9092",
                    )
                for key, value_node_ in zip(_BOOTSTRAP_KEYS, bootstrap, strict=False):
                    if value_node_ is not None and properties.get(key) == "":
                        self.report(value_node_, _join(path, key), "must not be empty")
            clusters[name] = KafkaClusterSpec(name, properties, _position(key_node)[0])
        return clusters

    def cluster_for(
        self, node: yaml.Node, field: str, clusters: Mapping[str, KafkaClusterSpec], what: str
    ) -> str | None:
        """The one declared cluster when `cluster:` is left out; reported when ambiguous."""
        if len(clusters) == 1:
            return next(iter(clusters))
        if clusters:
            self.report(
                node,
                field,
                f"missing cluster: {len(clusters)} clusters are declared "
                f"({', '.join(clusters)}), so say which one {what}",
            )
        return None

    def known_cluster(
        self, node: yaml.Node, field: str, clusters: Mapping[str, KafkaClusterSpec]
    ) -> str | None:
        name = self.string(node, field, "a cluster name", required=True)
        # With no cluster read cleanly, kafka: was already reported; don't pile on.
        if name is None or not clusters or name in clusters:
            return name
        hint = _suggest(name, clusters) or f"; declared clusters: {', '.join(clusters)}"
        self.report(node, field, f"unknown cluster {name!r} (not under kafka.clusters){hint}")
        return None

    def topics(self, top: _Map, clusters: Mapping[str, KafkaClusterSpec]) -> dict[str, TopicSpec]:
        expected = "a mapping of topic name -> {cluster, partitions, replication_factor, config}"
        m = self.mapping(top.value("topics"), "topics", None, expected)
        if m is None:
            return {}
        topics: dict[str, TopicSpec] = {}
        self.declared_topics.update(m.items)
        for name, (key_node, value_node) in m.items.items():
            path = m.field(name)
            if not _KAFKA_TOPIC.fullmatch(name):
                self.report(key_node, path, f"expected {_TOPIC_EXPECTED}; got {name!r}")
                continue
            spec = self.mapping(value_node, path, _TOPIC_KEYS, "a mapping")
            if spec is None:
                if not _is_null(value_node):
                    continue
                spec = _Map(value_node, path, {})  # `name:` alone: all defaults
            cluster_node = spec.value("cluster")
            if cluster_node is not None:
                cluster = self.known_cluster(cluster_node, spec.field("cluster"), clusters)
            else:
                cluster = self.cluster_for(
                    key_node, spec.field("cluster"), clusters, "this topic is on"
                )
            partitions = self.integer(spec.value("partitions"), spec.field("partitions"), 1)
            replication = self.integer(
                spec.value("replication_factor"), spec.field("replication_factor"), 1
            )
            config = self.string_map(
                spec.value("config"), spec.field("config"), "a mapping of topic configs"
            )
            if cluster is not None:
                line = _position(key_node)[0]
                topics[name] = TopicSpec(name, cluster, partitions, replication, config, line)
        return topics

    def worker(self, top: _Map) -> WorkerSpec | None:
        m = self.mapping(top.value("worker"), "worker", _WORKER_KEYS, "a mapping")
        if m is None:
            return None
        if m.value("app") is None:
            self.missing(m, "app", _APP_EXPECTED)
        app = self.string(m.value("app"), m.field("app"), _APP_EXPECTED, pattern=_APP_REF)
        uri = self.url(m.value("uri"), m.field("uri"))
        processes = self.integer(m.value("processes"), m.field("processes"), 1)
        keys = self.string_list(
            m.value("identity_keys"),
            m.field("identity_keys"),
            "Restate public keys (publickeyv1_...)",
            _IDENTITY_KEY,
        )
        if app is None:
            return None
        app_node = m.value("app")
        position = _position(app_node) if app_node is not None else (0, 0)
        return WorkerSpec(app, uri or DEFAULT_WORKER_URI, processes or 1, keys, position)

    def bindings(
        self,
        top: _Map,
        clusters: Mapping[str, KafkaClusterSpec],
        topics: Mapping[str, TopicSpec],
    ) -> list[Binding]:
        node = top.value("bindings")
        if node is None or _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.report(node, "bindings", f"expected a list of bindings; got {_kind(node)}")
            return []
        result: list[Binding] = []
        names: dict[str, int] = {}
        groups: dict[tuple[str, str], tuple[str, int]] = {}
        routes: dict[tuple[str, str], tuple[str, int]] = {}
        for i, item in enumerate(node.value):
            path = f"bindings[{i}]"
            m = self.mapping(item, path, _BINDING_KEYS, "a mapping (a binding)")
            if m is None:
                if _is_null(item):
                    self.report(item, path, "expected a mapping (a binding); got null")
                continue
            # Checked on the written name, so a binding with other problems still counts.
            name_node = m.value("name")
            if isinstance(name_node, yaml.ScalarNode) and name_node.tag == _STR:
                name = str(name_node.value)
                if name in names:
                    self.report(
                        name_node,
                        m.field("name"),
                        f"duplicate binding name {name!r} (first at line {names[name]})",
                    )
                names.setdefault(name, _position(name_node)[0])
            binding = self.binding(m, clusters, topics)
            if binding is None:
                continue
            # Two bindings in one group would split the partitions between them. (A repeated
            # name repeats the default group too: that is reported once, as the name.)
            group_key = (binding.cluster, binding.consumer_group)
            repeated_default = binding.group is None and "group.id" not in binding.options
            if group_key in groups and not (
                repeated_default and groups[group_key][0] == binding.name
            ):
                other, line = groups[group_key]
                self.report(
                    binding.position("group"),
                    m.field("group"),
                    f"consumer group {binding.consumer_group!r} is already used by binding "
                    f"{other!r} (line {line}); each binding needs its own group",
                )
            groups.setdefault(group_key, (binding.name, binding.line))
            route = (binding.source, binding.sink)
            if route in routes:
                other, line = routes[route]
                self.report(
                    (binding.line, binding.column),
                    path,
                    f"binding {other!r} (line {line}) already delivers {binding.source} "
                    f"to {binding.sink}",
                )
            routes.setdefault(route, (binding.name, binding.line))
            result.append(binding)
        return result

    def binding(
        self,
        m: _Map,
        clusters: Mapping[str, KafkaClusterSpec],
        topics: Mapping[str, TopicSpec],
    ) -> Binding | None:
        before = len(self.problems)
        v, f = m.value, m.field
        for key, expected in (
            ("name", _NAME_EXPECTED),
            ("topic", _TOPIC_EXPECTED),
            ("handler", _HANDLER_EXPECTED),
        ):
            if v(key) is None:
                self.missing(m, key, expected)

        name = self.string(
            v("name"), f("name"), _NAME_EXPECTED, required=True, pattern=_BINDING_NAME
        )
        topic = self.topic_name(v("topic"), f("topic"), required=True)
        handler = self.string(
            v("handler"), f("handler"), _HANDLER_EXPECTED, required=True, pattern=_HANDLER
        )
        keyed = self.boolean(v("keyed"), f("keyed"))
        format_: Format | None = self.choice(v("format"), f("format"), FORMATS)
        schema = self.string(v("schema"), f("schema"), "a path to an Avro schema (.avsc) file")
        avro_wire: AvroWire | None = self.choice(v("avro_wire"), f("avro_wire"), AVRO_WIRES)
        schema_registry = self.url(v("schema_registry"), f("schema_registry"))
        start: Start | None = self.choice(v("start"), f("start"), STARTS)
        group = self.string(v("group"), f("group"), "a consumer group id")
        dead_letter = self.topic_name(v("dead_letter"), f("dead_letter"))
        retry = self.retry(v("retry"), f("retry"))
        paused = self.boolean(v("paused"), f("paused"))
        dedupe = self.boolean(v("dedupe"), f("dedupe"))
        batch = self.batch(v("batch"), f("batch"))
        options = self.string_map(
            v("options"), f("options"), "a mapping of subscription options (string -> string)"
        )

        # Cross-field rules, only over values that were read cleanly (no cascades).
        format_known = format_ is not None or v("format") is None
        format_ = format_ or "json"
        if format_ == "avro" and v("schema") is None:
            self.report(
                m.node,
                f("schema"),
                "format: avro needs schema: (an .avsc file, relative to this file's directory)",
            )
        if schema is not None and format_known and format_ != "avro":
            self.report(
                v("schema") or m.node,
                f("schema"),
                f"schema applies only to format: avro (format is {format_})",
            )
        schema_path = self.path.parent / schema if schema is not None else None
        if schema_path is not None and format_ == "avro" and not schema_path.is_file():
            self.report(v("schema") or m.node, f("schema"), f"schema file not found: {schema_path}")
        if v("avro_wire") is not None and format_known and format_ != "avro":
            self.report(
                v("avro_wire") or m.node,
                f("avro_wire"),
                f"avro_wire applies only to format: avro (format is {format_})",
            )
        if v("schema_registry") is not None and (format_ != "avro" or avro_wire != "confluent"):
            self.report(
                v("schema_registry") or m.node,
                f("schema_registry"),
                "schema_registry applies only to format: avro with avro_wire: confluent "
                "(it resolves the schema ids those records carry)",
            )
        if topic is not None and dead_letter == topic:
            self.report(
                v("dead_letter") or m.node,
                f("dead_letter"),
                "the dead-letter topic must differ from the binding's topic",
            )
        if dedupe and format_ != "json":
            self.report(
                v("dedupe") or m.node,
                f("dedupe"),
                "dedupe needs format json: the event id travels in a CloudEvents JSON envelope",
            )
        if batch is not None and dedupe:
            self.report(
                v("dedupe") or m.node,
                f("dedupe"),
                "dedupe is not available on a batched binding (the high-water offset already "
                "drops redelivered records)",
            )
        if batch is not None and set(options) - {"group.id"}:
            self.report(
                v("options") or m.node,
                f("options"),
                "a batched binding has no Restate subscription, so it takes no subscription "
                "options (group.id aside)",
            )
        for option, own_field in (("group.id", "group"), ("auto.offset.reset", "start")):
            if option in options and v(own_field) is not None:
                self.report(
                    v("options") or m.node,
                    _join(f("options"), option),
                    f"{option} is set by {own_field}:; drop it from options",
                )
        cluster = self.binding_cluster(m, topic, clusters, topics)

        if name is None or topic is None or handler is None or cluster is None:
            return None
        if len(self.problems) > before:
            return None
        service, handler_name = handler.split("/")
        line, column = _position(m.node)
        return Binding(
            name=name,
            topic=topic,
            cluster=cluster,
            service=service,
            handler=handler_name,
            keyed=True if keyed is None else keyed,
            format=format_,
            schema=schema_path,
            avro_wire=avro_wire or "plain",
            schema_registry=schema_registry,
            start=start or "earliest",
            group=group,
            dead_letter=dead_letter,
            retry=retry,
            paused=bool(paused),
            dedupe=bool(dedupe),
            options=options,
            batch=batch,
            line=line,
            column=column,
            positions={key: _position(value) for key, (_, value) in m.items.items()},
        )

    def binding_cluster(
        self,
        m: _Map,
        topic: str | None,
        clusters: Mapping[str, KafkaClusterSpec],
        topics: Mapping[str, TopicSpec],
    ) -> str | None:
        """The written cluster, else the declared topic's, else the only one declared."""
        node = m.value("cluster")
        declared = topics.get(topic) if topic is not None else None
        if node is None:
            if declared is not None:
                return declared.cluster
            if topic is None or topic in self.declared_topics:
                return None  # the topic's own entry was reported
            return self.cluster_for(
                m.node,
                m.field("cluster"),
                clusters,
                f"topic {topic!r} is on (or declare the topic under topics:)",
            )
        cluster = self.known_cluster(node, m.field("cluster"), clusters)
        if cluster is not None and declared is not None and declared.cluster != cluster:
            self.report(
                node,
                m.field("cluster"),
                f"topic {topic!r} is declared on cluster {declared.cluster!r} under topics: "
                f"(line {declared.line}), not {cluster!r}",
            )
        return cluster

    def batch(self, node: yaml.Node | None, path: str) -> BatchSpec | None:
        m = self.mapping(node, path, _BATCH_KEYS, "a mapping {max_records, max_wait}")
        if m is None:
            return None
        max_records = self.integer(m.value("max_records"), m.field("max_records"), 1)
        max_wait = self.duration(m.value("max_wait"), m.field("max_wait"))
        if max_records is not None and max_records > MAX_BATCH_RECORDS:
            self.report(
                m.value("max_records") or m.node,
                m.field("max_records"),
                f"expected at most {MAX_BATCH_RECORDS} records per batch; got {max_records}",
            )
            return None
        if max_wait is not None and max_wait > MAX_BATCH_WAIT:
            self.report(
                m.value("max_wait") or m.node,
                m.field("max_wait"),
                f"expected at most {MAX_BATCH_WAIT.total_seconds():g}s; got "
                f"{max_wait.total_seconds():g}s",
            )
            return None
        default = BatchSpec()
        return BatchSpec(max_records or default.max_records, max_wait or default.max_wait)

    def retry(self, node: yaml.Node | None, path: str) -> RetrySpec | None:
        m = self.mapping(node, path, _RETRY_KEYS, "a mapping")
        if m is None:
            return None
        spec = RetrySpec(
            max_attempts=self.integer(m.value("max_attempts"), m.field("max_attempts"), 1),
            initial_interval=self.duration(
                m.value("initial_interval"), m.field("initial_interval")
            ),
            max_interval=self.duration(m.value("max_interval"), m.field("max_interval")),
            factor=self.number(m.value("factor"), m.field("factor"), 1.0),
        )
        if (
            spec.initial_interval is not None
            and spec.max_interval is not None
            and spec.max_interval < spec.initial_interval
        ):
            self.report(
                m.value("max_interval") or m.node,
                m.field("max_interval"),
                "max_interval must not be shorter than initial_interval",
            )
        return spec

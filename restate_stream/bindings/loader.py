"""bindings.yaml -> BindingsFile: every problem as `file:line:col: field: what was expected`.

Three steps, each reporting what it can: _yaml reads the text (syntax, interpolation, duplicate
keys) keeping every value's position; schema's pydantic models check the shape (keys, types,
ranges, rules within a binding), and their errors are mapped back to those positions; the
checks here need the whole file (which cluster, consumer groups shared between bindings).
The problems of the first two steps come together; the last runs once the shape is right.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from connectors.secrets import redact_url
from restate_stream.bindings._compose import MAX_BYTES
from restate_stream.bindings._yaml import (
    SECRET_SHOWN,
    Document,
    Loc,
    field_path,
    read_yaml,
    secret_at,
)
from restate_stream.bindings.model import (
    GROUP_PREFIX,
    Binding,
    BindingsError,
    BindingsFile,
    KafkaClusterSpec,
    Position,
    Problem,
    TopicSpec,
    WorkerSpec,
)
from restate_stream.bindings.schema import (
    FIELD_KEYS,
    BindingEntry,
    FileSpec,
    TopicEntry,
    expected_at,
    keys_at,
    parse_duration,
)

__all__ = ["load_bindings", "parse_bindings", "parse_duration"]

# Past this many, the shape's problems are cut short: each costs time to place and word, and a
# file with hundreds of them (a hostile one, or the wrong file) needs its first ones fixed.
MAX_PROBLEMS = 100


def load_bindings(path: str | Path, env: Mapping[str, str] | None = None) -> BindingsFile:
    """Read and validate a bindings file; raises BindingsError listing every problem."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # no more: the file may be anything, /dev/zero too
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = Problem(str(path), 1, 1, "", f"cannot read the file: {reason}")
        raise BindingsError([problem]) from exc
    if len(data) > MAX_BYTES:
        message = (
            f"the file is larger than {MAX_BYTES / 2**20:g} MiB; a bindings file needs far less"
        )
        raise BindingsError([Problem(str(path), 1, 1, "", message)])
    return parse_bindings(text, path, env)


def parse_bindings(text: str, path: Path, env: Mapping[str, str] | None = None) -> BindingsFile:
    """Validate YAML `text` as if read from `path` (relative schema paths resolve from its dir)."""
    path = Path(path)
    doc = read_yaml(text, os.environ if env is None else env)
    problems = [Problem(str(path), *at, field_path(loc), text) for at, loc, text in doc.problems]
    if doc.data is None and problems:
        raise BindingsError(problems)  # nothing was read
    if not isinstance(doc.data, dict):
        shown = doc.written[()].shown
        message = f"expected a mapping at the top level (with kafka: and bindings:); got {shown}"
        raise BindingsError([*problems, Problem(str(path), 1, 1, "", message)])
    try:
        spec = FileSpec.model_validate(doc.data, context={"base": path.parent})
    except ValidationError as exc:
        problems += _problems(path, doc, exc.errors())
        raise BindingsError(problems) from None
    resolved = _Resolver(path, doc, spec)
    if problems or resolved.problems:
        raise BindingsError([*problems, *resolved.problems])
    return resolved.result


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _problems(path: Path, doc: Document, errors: list[ErrorDetails]) -> list[Problem]:
    """The first MAX_PROBLEMS of pydantic's `errors` as Problems, and a line saying how many
    more there are at most (some may be about a value that was reported already)."""
    found: list[Problem] = []
    for i, error in enumerate(errors):
        if len(found) == MAX_PROBLEMS:
            message = f"and up to {len(errors) - i} more problems, not listed until these are fixed"
            return [*found, Problem(str(path), *doc.position(_loc(error)), "", message)]
        if (problem := _problem(path, doc, error)) is not None:
            found.append(problem)
    return found


def _loc(error: ErrorDetails) -> Loc:
    """Where `error` is, in the file's keys: a default is validated under the field's name,
    not its key (`schema_`, not `schema`); a rule may name a key inside the value."""
    at: tuple[str, ...] = error.get("ctx", {}).get("at", ())
    return tuple(FIELD_KEYS.get(p, p) if isinstance(p, str) else p for p in (*error["loc"], *at))


def _problem(path: Path, doc: Document, error: ErrorDetails) -> Problem | None:
    """A pydantic error, told at the place it was written and in the words of the schema."""
    loc = _loc(error)
    if any(loc[:end] in doc.unreadable for end in range(len(loc) + 1)):
        return None  # the value was not read (an unset variable...), which is reported
    is_key = loc[-1:] == ("[key]",)
    place = loc[:-1] if is_key else loc
    position = doc.position(place, key=is_key or error["type"] == "extra_forbidden")
    kind = error["type"]
    if kind == "rule":
        message = _unsubstituted(error["msg"], doc, place, error["input"])
    elif kind == "extra_forbidden":
        keys = keys_at(loc[:-1])
        hint = _suggest(str(loc[-1]), keys) or f"; expected one of {', '.join(keys)}"
        message = f"unknown key '{loc[-1]}'{hint}"
    elif kind == "missing":
        position = doc.position(loc[:-1])
        message = f"missing required field '{loc[-1]}' (expected {expected_at(loc)})"
    else:
        written = doc.written.get(place)
        got = repr(place[-1]) if is_key else written.shown if written else _shown(place, error)
        expected = expected_at(loc)
        message = f"expected {expected}; got {got}" if expected else f"{error['msg']}; got {got}"
    return Problem(str(path), *position, field_path(place), message)


def _unsubstituted(message: str, doc: Document, loc: Loc, value: Any) -> str:
    """`message` about `value`, read at `loc`, with `value` as written when an environment
    variable's value went into it (a rule may quote the value it breaks: a schema path)."""
    written = doc.written.get(loc)
    if written is None or written.from_env is None or not isinstance(value, str) or not value:
        return message
    return message.replace(value, written.from_env)


def _shown(loc: Loc, error: ErrorDetails) -> str:
    """A value pydantic saw that the reader did not record, as a message shows it."""
    if secret_at(loc):
        return SECRET_SHOWN
    value = error["input"]
    return repr(redact_url(value) if isinstance(value, str) else value)


class _Resolver:
    """The checks that need the whole file, and the specs resolved from it."""

    def __init__(self, path: Path, doc: Document, spec: FileSpec) -> None:
        self.path = path
        self.doc = doc
        self.problems: list[Problem] = []
        self.clusters = {
            name: KafkaClusterSpec(name, props, self.at(("kafka", "clusters", name), key=True)[0])
            for name, props in spec.kafka.clusters.items()
        }
        self.declared_topics = set(spec.topics)
        self.topics: dict[str, TopicSpec] = {}
        for name, entry in spec.topics.items():
            self.topic(name, entry or TopicEntry())
        worker = None
        if spec.worker is not None:
            w = spec.worker
            app_at = self.at(("worker", "app"))
            worker = WorkerSpec(
                w.app,
                w.uri,
                w.processes,
                list(w.identity_keys),
                app_at,
                server=w.server,
                metrics_port=w.metrics_port,
                metrics_host=w.metrics_host,
                log_format=w.log_format,
            )
        bindings = self.bindings(spec.bindings)
        self.result = BindingsFile(path, spec.restate, self.clusters, self.topics, worker, bindings)

    def at(self, loc: Loc, *, key: bool = False) -> Position:
        return self.doc.position(loc, key=key)

    def report(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        line, column = self.at(loc[:-1] if at_key else loc, key=at_key)
        self.problems.append(Problem(str(self.path), line, column, field_path(loc), message))

    def show(self, loc: Loc, value: str) -> str:
        return self.doc.show(loc, value)

    def group_shown(self, entry: BindingEntry, loc: Loc) -> str:
        """The binding's consumer group, as messages show it (Binding.consumer_group)."""
        if entry.group is not None:
            return self.show((*loc, "group"), entry.group)
        if "group.id" in entry.options:
            return self.show((*loc, "options", "group.id"), entry.options["group.id"])
        return repr(GROUP_PREFIX + self.doc.as_written((*loc, "name"), entry.name))

    def route_shown(self, entry: BindingEntry, loc: Loc, binding: Binding) -> str:
        """`<source> to <sink>` of the binding, as messages show them."""
        cluster_at = (*loc, "cluster") if entry.cluster else ("topics", entry.topic, "cluster")
        cluster = self.doc.as_written(cluster_at, binding.cluster)
        topic = self.doc.as_written((*loc, "topic"), entry.topic)
        handler = self.doc.as_written((*loc, "handler"), binding.service + "/" + binding.handler)
        return f"kafka://{cluster}/{topic} to service://{handler}"

    def topic(self, name: str, entry: TopicEntry) -> None:
        loc = ("topics", name)
        if entry.cluster is not None:
            cluster = self.known_cluster(entry.cluster, (*loc, "cluster"))
        else:
            cluster = self.only_cluster((*loc, "cluster"), "this topic is on", at_key=True)
        if cluster is not None:
            config = dict(entry.config)
            line = self.at(loc, key=True)[0]
            partitions, replication = entry.partitions, entry.replication_factor
            self.topics[name] = TopicSpec(name, cluster, partitions, replication, config, line)

    def only_cluster(self, loc: Loc, what: str, *, at_key: bool = False) -> str | None:
        """The one declared cluster when `cluster:` is left out; reported when ambiguous."""
        if len(self.clusters) == 1:
            return next(iter(self.clusters))
        self.report(
            loc,
            f"missing cluster: {len(self.clusters)} clusters are declared "
            f"({', '.join(self.clusters)}), so say which one {what}",
            at_key=at_key,
        )
        return None

    def known_cluster(self, name: str, loc: Loc) -> str | None:
        if name in self.clusters:
            return name
        hint = _suggest(name, self.clusters) or f"; declared clusters: {', '.join(self.clusters)}"
        self.report(loc, f"unknown cluster {self.show(loc, name)} (not under kafka.clusters){hint}")
        return None

    def binding_cluster(self, entry: BindingEntry, loc: Loc) -> str | None:
        """The written cluster, else the declared topic's, else the only one declared."""
        declared = self.topics.get(entry.topic)
        topic = self.show((*loc, "topic"), entry.topic)
        if entry.cluster is None:
            if declared is not None:
                return declared.cluster
            if entry.topic in self.declared_topics:
                return None  # the topic's own entry was reported
            what = f"topic {topic} is on (or declare the topic under topics:)"
            return self.only_cluster((*loc, "cluster"), what)
        cluster = self.known_cluster(entry.cluster, (*loc, "cluster"))
        if cluster is not None and declared is not None and declared.cluster != cluster:
            declared_cluster = self.show(("topics", entry.topic, "cluster"), declared.cluster)
            self.report(
                (*loc, "cluster"),
                f"topic {topic} is declared on cluster {declared_cluster} under topics: "
                f"(line {declared.line}), not {self.show((*loc, 'cluster'), cluster)}",
            )
        return cluster

    def bindings(self, entries: list[BindingEntry]) -> list[Binding]:
        result: list[Binding] = []
        names: dict[str, int] = {}
        # (cluster, group) and (source, sink) -> the binding using them: its name, as shown
        groups: dict[tuple[str, str], tuple[str, str, int]] = {}
        routes: dict[tuple[str, str], tuple[str, int]] = {}
        for i, entry in enumerate(entries):
            loc: Loc = ("bindings", i)
            name = self.show((*loc, "name"), entry.name)
            if entry.name in names:
                first = names[entry.name]
                self.report(
                    (*loc, "name"), f"duplicate binding name {name} (first at line {first})"
                )
            names.setdefault(entry.name, self.at((*loc, "name"))[0])
            cluster = self.binding_cluster(entry, loc)
            if cluster is None:
                continue
            binding = self.binding(entry, cluster, loc)
            # Two bindings in one group would split the partitions between them. (A repeated
            # name repeats the default group too: that is reported once, as the name.)
            group_key = (binding.cluster, binding.consumer_group)
            repeated_default = binding.group is None and "group.id" not in binding.options
            if group_key in groups and not (
                repeated_default and groups[group_key][0] == binding.name
            ):
                _, other, line = groups[group_key]
                self.report(
                    (*loc, "group"),
                    f"consumer group {self.group_shown(entry, loc)} is already used by binding "
                    f"{other} (line {line}); each binding needs its own group",
                )
            groups.setdefault(group_key, (binding.name, name, binding.line))
            route = (binding.source, binding.sink)
            if route in routes:
                other, line = routes[route]
                delivers = self.route_shown(entry, loc, binding)
                self.report(loc, f"binding {other} (line {line}) already delivers {delivers}")
            routes.setdefault(route, (name, binding.line))
            result.append(binding)
        return result

    def binding(self, entry: BindingEntry, cluster: str, loc: Loc) -> Binding:
        written: dict[str, Any] = dict(entry)
        for resolved in ("cluster", "handler", "schema_", "options"):
            del written[resolved]
        if entry.handler is not None:
            service, handler = entry.handler.split("/")
        else:  # restate-stream's own object, named after the binding (windows/, tables/)
            service, handler = entry.name, "add" if entry.window is not None else "put"
        schema = self.path.parent / entry.schema_ if entry.schema_ is not None else None
        return Binding(
            **written,
            cluster=cluster,
            service=service,
            handler=handler,
            schema=schema,
            options=dict(entry.options),
            line=self.at(loc)[0],
            column=self.at(loc)[1],
            positions=self.doc.positions_under(loc),
        )

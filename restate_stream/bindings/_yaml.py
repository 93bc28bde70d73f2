"""YAML text -> plain data that remembers where each value was written.

The YAML is composed into nodes and walked here instead of `yaml.safe_load`, so every key and
value keeps its line and column, and interpolation can be applied to scalar values:
`${VAR}`, `${VAR:-default}` (default when VAR is unset or empty; no nesting inside the
default) and `$${` for a literal `${`. A value holding a reference is read again as YAML would
read the substituted text, so `partitions: ${PARTITIONS:-4}` is the integer 4. A value that
took an environment variable's value is shown by messages as written (`'${KAFKA_PW}'`), never
as substituted: a file can name any variable, a secret too.

Problems found at this level (syntax, bounds of _compose, duplicate keys, bad merges, unset
variables) are reported here; the shape of the data is the schema's business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from connectors.secrets import is_secret, redact_url
from restate_stream.bindings._compose import RefusedYAML, compose

# 1-based (line, column) of a key or value in the YAML file.
Position = tuple[int, int]
# A place in the data: mapping keys and list indexes, as in pydantic's error locations.
Loc = tuple[str | int, ...]

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_REFERENCE_BODY = re.compile(r"(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


class WrittenInt(int):
    """A YAML integer that remembers how it was written (`0x10` stays "0x10" as a string)."""

    text: str


class WrittenFloat(float):
    text: str


SECRET_SHOWN = "a secret (not shown)"  # what messages say ("got ...") for a secret's value
FROM_ENV_SHOWN = "{written!r} (from the environment; its value is not shown)"


def secret_at(loc: Loc) -> bool:
    """Whether the value at `loc` is a secret (its key names one), never shown."""
    return bool(loc) and isinstance(loc[-1], str) and is_secret(loc[-1])


def field_path(loc: Loc) -> str:
    """('bindings', 0, 'retry') -> 'bindings[0].retry'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def _position(node: yaml.Node) -> Position:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping" if node.value else "an empty mapping"
    return "a list" if isinstance(node, yaml.SequenceNode) else "a scalar"


@dataclass(frozen=True)
class Written:
    """Where a value was written, and how a message shows it ("got ...")."""

    value: Position
    key: Position | None  # the key's position, for mapping entries
    shown: str
    # The text as written, when an environment variable's value went into the value.
    from_env: str | None = None


@dataclass
class Document:
    data: Any  # dicts, lists and scalars, like yaml.safe_load gives
    written: dict[Loc, Written] = field(default_factory=dict)
    # The positions of the values under each mapping or list, by key or index (written, indexed).
    children: dict[Loc, dict[str, Position]] = field(default_factory=dict)
    problems: list[tuple[Position, Loc, str]] = field(default_factory=list)
    unreadable: set[Loc] = field(default_factory=set)  # values already reported here

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """Where `loc` was written (its key with `key`), else where its nearest parent was."""
        for end in range(len(loc), -1, -1):
            found = self.written.get(loc[:end])
            if found is not None:
                return (found.key or found.value) if key and end == len(loc) else found.value
        return (1, 1)

    def as_written(self, loc: Loc, value: str) -> str:
        """`value`, read at `loc`, or its text as written when an environment variable's value
        went into it: what messages show, as a variable's value is never shown."""
        written = self.written.get(loc)
        return written.from_env if written is not None and written.from_env is not None else value

    def show(self, loc: Loc, value: str) -> str:
        """`value`, read at `loc`, quoted as a message shows it (see as_written)."""
        return repr(self.as_written(loc, value))

    def positions_under(self, loc: Loc) -> dict[str, Position]:
        """Where each key of the mapping at `loc` has its value."""
        return dict(self.children.get(loc, {}))

    def record(self, loc: Loc, written: Written) -> None:
        self.written[loc] = written
        if loc:
            self.children.setdefault(loc[:-1], {})[str(loc[-1])] = written.value


def read_yaml(text: str, env: Mapping[str, str]) -> Document:
    """The data of `text`; problems are collected in the result, never raised."""
    return _Reader(env).read(text)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.doc = Document(None)
        self._constructor = SafeConstructor()
        self._resolver = Resolver()

    def report(self, where: yaml.Node | Position, loc: Loc, message: str) -> None:
        position = _position(where) if isinstance(where, yaml.Node) else where
        self.doc.problems.append((position, loc, message))

    def read(self, text: str) -> Document:
        try:
            root = compose(text)
        except RefusedYAML as exc:
            self.report(exc.position, (), exc.problem)
            return self.doc
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            context = ""
            if exc.context:
                at = exc.context_mark
                place = f" at line {at.line + 1}, column {at.column + 1}" if at else ""
                context = f" ({exc.context}{place})"
            self.report(where, (), f"invalid YAML: {exc.problem}{context}")
            return self.doc
        except yaml.YAMLError as exc:
            self.report((1, 1), (), f"invalid YAML: {exc}")
            return self.doc
        if root is None:
            self.report(
                (1, 1), (), "the file is empty; expected a mapping with kafka: and bindings:"
            )
            return self.doc
        self.doc.data = self.value(root, (), None)
        return self.doc

    def value(self, node: yaml.Node, loc: Loc, key: yaml.Node | None) -> Any:
        value: Any = None
        shown = _kind(node)
        from_env = None
        if isinstance(node, yaml.ScalarNode):
            value, shown, from_env = self.scalar(node, loc)
            shown = SECRET_SHOWN if secret_at(loc) else shown
        key_position = _position(key) if key is not None else None
        self.doc.record(loc, Written(_position(node), key_position, shown, from_env))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*loc, i), None) for i, item in enumerate(node.value)]
        return value

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node, merged in self.entries(node, loc):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                self.report(key_node, loc, f"expected a string key; got {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key in result:
                if not merged:
                    message = f"duplicate key (first at line {first_lines[key]})"
                    self.report(key_node, (*loc, key), message)
                continue  # a merged key loses to one written here (or merged earlier)
            first_lines[key] = _position(key_node)[0]
            result[key] = self.value(value_node, (*loc, key), key_node)
        return result

    def entries(self, node: yaml.MappingNode, loc: Loc) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """(key, value, merged) pairs: the written ones first, then those from `<<` merge keys.

        Done here rather than with SafeConstructor.flatten_mapping, which rewrites the (possibly
        aliased, so shared) node and mixes merged keys with written ones. (No mapping merges
        itself: _compose refuses an alias inside its own anchor.)
        """
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
                if not isinstance(source, yaml.MappingNode):
                    message = "expected a mapping (or list of mappings) to merge with <<"
                    self.report(source, loc, message)
                    continue
                merged.extend((k, v, True) for k, v, _ in self.entries(source, loc))
        return own + merged

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> tuple[Any, str, str | None]:
        """The scalar as YAML types it (after interpolation), how messages show it, and its
        text as written when an environment variable went into it."""
        written = text = str(node.value)
        from_env = False
        if node.tag == _STR and "$" in text:
            interpolated = self.interpolate(node, loc, text)
            if interpolated is None:
                self.doc.unreadable.add(loc)
                return text, repr(text), None
            text, from_env = interpolated
        value, shown = self.typed(node, text)
        if from_env:
            written = redact_url(written)  # a URL's password may be written around a reference
            return value, FROM_ENV_SHOWN.format(written=written), written
        return value, shown, None

    def typed(self, node: yaml.ScalarNode, text: str) -> tuple[Any, str]:
        """`text`, written at `node` in place of its own, as YAML types it; how it is shown."""
        if text != node.value:
            tag: str = self._resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
            node = yaml.ScalarNode(tag, text, node.start_mark, node.end_mark)
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError):
            value = text
        if value is None:
            return None, "null"
        if isinstance(value, bool):
            return value, f"{text} (a boolean)"
        if isinstance(value, int | float):
            written = WrittenInt(value) if isinstance(value, int) else WrittenFloat(value)
            written.text = text
            return written, text
        # Strings, and dates and the like taken as written; a URL's password is not shown.
        return text, repr(redact_url(text))

    def interpolate(self, node: yaml.Node, loc: Loc, text: str) -> tuple[str, bool] | None:
        """`text` with its references replaced, and whether any took a variable's value (not
        only defaults); None when one could not be (reported)."""
        out: list[str] = []
        ok = True
        from_env = False
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
                    loc,
                    f"malformed reference {match.group(0)!r}: expected ${{VAR}} or "
                    "${VAR:-default} (write $${ for a literal ${)",
                )
                ok = False
                continue
            var, default = ref["var"], ref["default"]
            value = self.env.get(var)
            if default is not None and not value:
                value = default  # written in the file, so shown as any other value
            elif value is not None:
                from_env = True
            if value is None:
                self.report(
                    node,
                    loc,
                    f"environment variable {var} is not set and has no default "
                    f"(set it, or write ${{{var}:-default}})",
                )
                ok = False
                continue
            out.append(value)
        out.append(text[end:])
        return ("".join(out), from_env) if ok else None

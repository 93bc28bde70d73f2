"""YAML text -> a tree of nodes, within bounds that a hostile file cannot push past.

Composing builds no objects, but an alias is a second path to the same node, and whoever walks
the tree (the reader, to record positions) walks the aliased node once per use: nine aliases
of nine aliases of ... is a few hundred bytes that expand to billions of values. So values are
counted as they are composed, each use of an alias counting every value under its anchor, and
the file is refused past MAX_VALUES; an alias used inside its own anchor (`a: &x [*x]`, a
value that contains itself) and nesting deeper than MAX_DEPTH are refused too. Each refusal
names the place (the alias, the value) where the bound was passed.

libyaml parses when it is there (its events come ~15x faster than PyYAML's own parser's);
composing is PyYAML's, with the counting added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, Event, NodeEvent
from yaml.nodes import Node
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

# Bounds that keep reading any file well within a second, far past any real bindings file:
# a thousand bindings (with retry: and options: each) are ~17 000 values in ~150 KiB.
MAX_BYTES = 1024 * 1024  # checked by whoever reads the file, before reading more
MAX_VALUES = 25_000
MAX_DEPTH = 100  # a bindings file nests ~5 deep; PyYAML's composer recurses per level


class RefusedYAML(Exception):
    """Valid YAML that is not read: too many values once aliases are expanded, too deep, or
    an alias inside its own anchor. `position` is where (1-based line, column)."""

    def __init__(self, problem: str, event: Event) -> None:
        super().__init__(problem)
        self.problem = problem
        mark = event.start_mark
        self.position = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _BoundedComposer(Composer):
    if TYPE_CHECKING:  # the parser's, which the loader mixes in

        def peek_event(self) -> Event | None: ...

    def __init__(self) -> None:
        super().__init__()
        self._values = 0
        self._depth = 0
        self._open: set[str] = set()  # anchors of the nodes being composed
        self._sizes: dict[int, int] = {}  # id(node) -> the values it stands for, aliases expanded

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        assert event is not None  # the parser ends a document before its stream
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                raise RefusedYAML(
                    f"alias *{event.anchor} is inside the value &{event.anchor} it names "
                    "(a value that contains itself)",
                    event,
                )
            node = super().compose_node(parent, index)  # an unknown alias is reported there
            assert node is not None
            self._count(self._sizes[id(node)], event, "aliases expand to")
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise RefusedYAML(f"values nested more than {MAX_DEPTH} deep", event)
        assert isinstance(event, NodeEvent)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        before = self._values
        self._count(1, event, "the file holds")
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = self._values - before
        if anchor is not None:
            self._open.discard(anchor)
        self._depth -= 1
        return node

    def _count(self, values: int, event: Event, what: str) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise RefusedYAML(
                f"{what} more than {MAX_VALUES} values (each use of an alias counts "
                "every value under its anchor); a bindings file needs far fewer",
                event,
            )


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Loader(_BoundedComposer, CParser, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(Reader, Scanner, Parser, _BoundedComposer, Resolver):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            Resolver.__init__(self)


def compose(text: str) -> Node | None:
    """The node tree of the one document in `text` (None when it has none).

    Raises yaml.MarkedYAMLError for invalid YAML, RefusedYAML past the bounds above.
    """
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()

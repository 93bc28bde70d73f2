"""Where the command line writes: rich consoles on stdout and stderr, and shared renderers.

Markup and highlighting are off: messages carry file paths, `dlq[0]@3` positions and
`[applied]` tags that rich would otherwise read as markup. Styles come from Text objects.
Off a terminal (a pipe, a test) tables are laid out without a width limit, so each row stays
one line for grep.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

_UNLIMITED = 100_000


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else _UNLIMITED
    return Console(
        file=stream, stderr=stderr, markup=False, highlight=False, soft_wrap=True, width=width
    )


def out() -> Console:
    return _console(stderr=False)


def err() -> Console:
    return _console(stderr=True)


def say(*parts: str | tuple[str, str] | Text) -> None:
    """One line on stdout; a (text, style) part is styled on a terminal."""
    out().print(Text.assemble(*parts))


def note(*parts: str | tuple[str, str] | Text) -> None:
    """One line on stderr: what is happening, not the command's result."""
    err().print(Text.assemble(*parts))


def show(renderable: RenderableType) -> None:
    out().print(renderable)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON, never styled or wrapped."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(*columns: str) -> Table:
    grid = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        grid.add_column(column, no_wrap=True, overflow="fold")
    return grid


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""Small, comment-preserving edits of a bindings file (used by `restate-stream pause|resume`).

The file stays the source of truth: pausing writes `paused: true` into the binding, then
`apply` makes Restate match. Only block-style bindings are edited; the rest of the text,
comments included, is left byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

from restate_stream.bindings.loader import load_bindings
from restate_stream.bindings.model import BindingsError, Problem

_TOKEN = re.compile(r"[^\s,}#]+")


def set_paused(path: Path, name: str, paused: bool) -> bool:
    """Set `paused` of binding `name`; returns False when it already had that value."""
    spec = load_bindings(path)
    matches = [b for b in spec.bindings if b.name == name]
    if not matches:
        known = ", ".join(b.name for b in spec.bindings) or "none"
        raise BindingsError(
            [Problem(str(path), 1, 1, "bindings", f"no binding named {name!r} (bindings: {known})")]
        )
    binding = matches[0]
    if binding.paused == paused:
        return False
    lines = path.read_text().splitlines(keepends=True)
    value = "true" if paused else "false"
    if "paused" in binding.positions:
        line, column = binding.positions["paused"]
        text = lines[line - 1]
        token = _TOKEN.match(text, column - 1)
        assert token is not None, "the loader pointed at the paused value"
        lines[line - 1] = text[: token.start()] + value + text[token.end() :]
    else:
        line, column = binding.positions["name"]
        text = lines[line - 1]
        key_column = text.rfind("name", 0, column - 1)
        if key_column < 0 or "{" in text[:key_column]:
            raise BindingsError(
                [
                    Problem(
                        str(path),
                        line,
                        column,
                        f"binding {name}",
                        "cannot add `paused` to a flow-style binding; write `paused: "
                        f"{value}` into it yourself",
                    )
                ]
            )
        newline = "\n" if text.endswith("\n") else ""
        if not newline:
            lines[line - 1] = text + "\n"
        lines.insert(line, " " * key_column + f"paused: {value}\n")
    path.write_text("".join(lines))
    return True

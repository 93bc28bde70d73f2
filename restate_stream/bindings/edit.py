"""Small, comment-preserving edits of a bindings file (`restate-stream pause|resume|migrate`).

The file stays the source of truth: pausing writes `paused: true` into the binding, then
`apply` makes Restate match. Only block-style bindings are edited; the rest of the text,
comments included, is left byte for byte, and so are the file's mode and owner (it may hold
a SASL password readable by its owner only) and a symlink to it (written through).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from restate_stream.bindings.loader import load_bindings, parse_bindings
from restate_stream.bindings.model import Binding, BindingsError, BindingsFile, Delivery, Problem

_TOKEN = re.compile(r"[^\s,}#]+")


_PLAIN_BOOLEAN = re.compile(r"(?i)true|false|yes|no|on|off")


def _refuse(path: Path, line: int, column: int, name: str, why: str) -> BindingsError:
    return BindingsError([Problem(str(path), line, column, f"binding {name}", why)])


def set_paused(path: Path, name: str, paused: bool) -> bool:
    """Set `paused` of binding `name`; returns False when it already had that value.

    Only a plain `paused: true|false` written in the binding itself is rewritten (or a new
    line added); anything cleverer (interpolation, anchors, merge keys) is refused rather
    than guessed at. The result is loaded again before it replaces the file.
    """
    value = "true" if paused else "false"
    return _set_field(path, name, "paused", value, _PLAIN_BOOLEAN, lambda b: b.paused == paused)


def set_delivery(path: Path, name: str, delivery: Delivery) -> bool:
    """Set `delivery` of binding `name` (`restate-stream migrate`); returns False when the
    file already says it. Rewritten or added as `paused` is, by the same rules."""
    return _set_field(
        path, name, "delivery", delivery, _PLAIN_DELIVERY, lambda b: b.delivered_by == delivery
    )


_PLAIN_DELIVERY = re.compile(r"consumer|subscription")


def _set_field(
    path: Path,
    name: str,
    field_name: str,
    value: str,
    plain: re.Pattern[str],
    holds: Callable[[Binding], bool],
) -> bool:
    spec = load_bindings(path)
    matches = [b for b in spec.bindings if b.name == name]
    if not matches:
        known = ", ".join(b.name for b in spec.bindings) or "none"
        raise BindingsError(
            [Problem(str(path), 1, 1, "bindings", f"no binding named {name!r} (bindings: {known})")]
        )
    binding = matches[0]
    if holds(binding):
        return False
    with path.open(encoding="utf-8", newline="") as f:  # newline="": keep CRLF files CRLF
        lines = f.read().splitlines(keepends=True)
    yourself = f"write `{field_name}: {value}` into it yourself"
    if field_name in binding.positions:
        line, column = binding.positions[field_name]
        text = lines[line - 1]
        token = _TOKEN.match(text, column - 1)
        if token is None or not plain.fullmatch(token.group()):
            why = f"`{field_name}` is not a plain {plain.pattern.replace('|', '/')}; {yourself}"
            raise _refuse(path, line, column, name, why)
        lines[line - 1] = text[: token.start()] + value + text[token.end() :]
    else:
        line, column = binding.positions["name"]
        text = lines[line - 1]
        key_column = text.rfind("name", 0, column - 1)
        if key_column < 0 or "{" in text[:key_column]:
            raise _refuse(path, line, column, name, f"a flow-style binding; {yourself}")
        ending = "\r\n" if text.endswith("\r\n") else "\n"
        if not text.endswith(("\n", "\r")):
            lines[line - 1] = text + ending
        lines.insert(line, " " * key_column + f"{field_name}: {value}{ending}")
    edited = "".join(lines)
    _check_edit(path, edited, spec, name, field_name, holds)
    _replace(path, edited)
    return True


def _replace(path: Path, text: str) -> None:
    """Write `text` over the file `path` is (or links to), atomically: a reader sees the old
    file or the new one. The new file gets the old one's mode and owner; its temporary name
    is unpredictable and created exclusively (mode 0600), so no one else can plant or read it.
    """
    target = Path(os.path.realpath(path))
    shown = f"{target} (where {path} links to)" if path.is_symlink() else str(path)
    try:
        old = target.stat()
        fd, temporary = tempfile.mkstemp(".tmp", f".{target.name}.", target.parent)
    except OSError as exc:
        raise _unwritable(path, f"cannot write {shown}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            _keep_owner_and_mode(f.fileno(), old, path, shown)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise _unwritable(path, f"cannot write {shown}: {exc.strerror}") from exc
        raise


def _keep_owner_and_mode(fd: int, old: os.stat_result, path: Path, shown: str) -> None:
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)  # before fchmod, as chown clears setuid bits
        except PermissionError:
            raise _unwritable(
                path,
                f"cannot keep the owner of {shown} (uid {old.st_uid}, gid {old.st_gid}) in "
                "the rewritten file; edit it as that user",
            ) from None
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _unwritable(path: Path, why: str) -> BindingsError:
    return BindingsError([Problem(str(path), 1, 1, "", why)])


def _check_edit(
    path: Path,
    edited: str,
    before: BindingsFile,
    name: str,
    field_name: str,
    holds: Callable[[Binding], bool],
) -> None:
    """The edit changed exactly `field_name` of binding `name`, or the file is left alone."""
    after = parse_bindings(edited, path)
    changed = {
        b.name
        for b, a in zip(before.bindings, after.bindings, strict=False)
        if (b.name, getattr(b, field_name)) != (a.name, getattr(a, field_name))
    }
    target = next((b for b in after.bindings if b.name == name), None)
    if changed != {name} or target is None or not holds(target):
        binding = next(b for b in before.bindings if b.name == name)
        raise _refuse(
            path,
            binding.line,
            binding.column,
            name,
            f"editing `{field_name}` here would change other bindings too (anchors or merge "
            "keys?); set it in the file yourself",
        )

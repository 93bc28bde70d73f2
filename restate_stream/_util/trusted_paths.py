"""Paths a privileged process may use: no other user can swap them, or what they lead to.

Root following a path that another user controls writes where that user says (a symlinked
log file) or runs what that user put there (a data or exec root). A path is trusted when
neither it nor any directory above it can be changed by another user: each is owned by us or
by root and writable by no one else, except a sticky directory such as /tmp, whose entries
only their owners may rename or remove. "Above it" is every directory the kernel walks through
to reach it, following each symlink on the way as the kernel does: a link is ours or root's
(whoever owns it in a sticky directory may replace it) and so is each directory on the way to
what it names, a link to a link too. The last component is ours and no symlink.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from restate_stream.errors import ConfigurationError


class UntrustedPathError(ConfigurationError, PermissionError):
    pass


def _refuse(path: Path, why: str, what: str) -> UntrustedPathError:
    return UntrustedPathError(f"{what} {path}: {why}; refusing to use it as user {os.geteuid()}")


def _others_can_write(mode: int) -> bool:
    return bool(mode & (stat.S_IWGRP | stat.S_IWOTH))


_MAX_LINKS = 40  # symlinks followed on one path, as the kernel's ELOOP limit


def _check_ancestor(path: Path, info: os.stat_result, uid: int, what: str) -> None:
    """A directory above the path: owned by us or root, writable only by its owner unless
    sticky (its entries, ours, cannot be renamed by others)."""
    if info.st_uid not in (uid, 0):
        raise _refuse(path, f"a directory above it is owned by uid {info.st_uid}", what)
    if _others_can_write(info.st_mode) and not info.st_mode & stat.S_ISVTX:
        raise _refuse(path, "a directory above it is writable by group or others", what)


def _check_route(path: Path, uid: int, what: str) -> None:
    """Every existing directory the kernel walks through to reach `path`'s parent, and every
    symlink it follows on the way (each to be ours or root's: in a sticky directory its owner
    may replace it, choosing where it leads). Past the first missing one, we create the rest."""
    current = Path("/")
    _check_ancestor(current, current.lstat(), uid, what)
    pending = list(path.absolute().parent.parts[1:])
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent  # physical, as the kernel: `current` holds no symlink
            continue
        step = current / name
        try:
            info = step.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISLNK(info.st_mode):
            _check_ancestor(step, info, uid, what)
            current = step
            continue
        links += 1
        if links > _MAX_LINKS:
            raise _refuse(path, f"more than {_MAX_LINKS} symlinks on the way to it", what)
        if info.st_uid not in (uid, 0):
            why = f"a symlink on the way to it, {step}, is owned by uid {info.st_uid}"
            raise _refuse(path, why, what)
        target = Path(os.readlink(step))
        if target.is_absolute():
            current = Path("/")
        pending[:0] = target.parts[1:] if target.is_absolute() else target.parts


def require_trusted_dir(path: Path, what: str = "directory") -> None:
    """Raise UntrustedPathError (naming the path and why) unless `path` is a directory of
    ours, no symlink, writable by nobody else, with trusted directories above it. A path
    that does not exist yet is trusted when the directories above it are (we create it)."""
    _check_route(path, os.geteuid(), what)
    info = _own_entry(path, what)
    if info is None:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(path, "it is not a directory", what)
    if _others_can_write(info.st_mode):
        mode = stat.S_IMODE(info.st_mode)
        raise _refuse(path, f"it is writable by group or others (mode {mode:o})", what)


def require_own_entry(path: Path, what: str = "file") -> None:
    """An entry inside a trusted directory: if it exists, ours and no symlink (root would
    write or read through it)."""
    _own_entry(path, what)


def _own_entry(path: Path, what: str) -> os.stat_result | None:
    """The entry's lstat if it exists, is ours and is no symlink; None if it does not exist."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(path, f"it is a symlink (to {os.readlink(path)})", what)
    if info.st_uid != os.geteuid():
        raise _refuse(path, f"it is owned by uid {info.st_uid}, not by us", what)
    return info

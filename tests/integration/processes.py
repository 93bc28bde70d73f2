"""Processes seen through /proc: what a process started, and whether one still runs."""

from __future__ import annotations

from pathlib import Path

from restate_stream._util.pids import argv_of


def descendants(pid: int) -> dict[int, str]:
    """The processes below `pid` (children, theirs, ...), each with its command line."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found[child] = command_line(child)
        todo.extend(children.get(child, []))
    return found


def command_line(pid: int) -> str:
    return " ".join(argv_of(pid) or [])


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

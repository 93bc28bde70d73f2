"""Recorded pids that are checked before they are signalled.

A pid alone does not name a process: once it exits, the kernel hands the number to the next
process that starts. A pid with the process's start time does (the start time, field 22 of
/proc/<pid>/stat in clock ticks since boot, only grows), so a recorded `(pid, start time)` is
signalled only while both match, and while its command line still has the engine's shape
(whole arguments, not a path anywhere in it: `tail -f <home>/kafka.log` names the home too).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ArgvCheck = Callable[[Sequence[str]], bool]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")": split after
    # the last ")"; the fields then start at field 3, so field 22 is the 20th.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def argv_of(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return [word.decode(errors="replace") for word in raw.split(b"\0")[:-1]]


def has_option(argv: Sequence[str], option: str, value: str) -> bool:
    """`option value` as two whole, adjacent arguments."""
    return any(a == option and b == value for a, b in itertools.pairwise(argv))


@dataclass(frozen=True)
class RecordedProcess:
    """A process we started: its pid and start time (None: recorded by an older version,
    which kept only the pid; then the command line's shape alone decides)."""

    pid: int
    started: int | None

    @classmethod
    def of(cls, pid: int) -> RecordedProcess:
        """Right after starting it (the start time is set when the process is forked)."""
        return cls(pid, start_time(pid))

    def alive_as(self, shape: ArgvCheck) -> bool:
        """The process still runs, is the one we started, and its command line has `shape`."""
        if self.started is not None and start_time(self.pid) != self.started:
            return False
        argv = argv_of(self.pid)
        return argv is not None and shape(argv)

    def to_text(self) -> str:
        return str(self.pid) if self.started is None else f"{self.pid} {self.started}"

    @classmethod
    def from_text(cls, text: str) -> RecordedProcess | None:
        """`pid [start time]`, as a pid file holds it; None if it is not that."""
        words = text.split()
        if not 1 <= len(words) <= 2 or not all(w.isdigit() for w in words):
            return None
        return cls(int(words[0]), int(words[1]) if len(words) == 2 else None)

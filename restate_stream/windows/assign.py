"""The windows of one key, as pure logic over event times in epoch milliseconds.

Tumbling and hopping windows here (sliding.py and sessions.py have the others, on the same
KeyTimeline). Windows are aligned to the epoch: a tumbling window of size S covers
[k*S, (k+1)*S); hopping windows of size S start every A (A <= S), so a record falls in up to
ceil(S/A) of them.

A key's stream time is the latest event time it has seen. A window closes when either
- the stream time reaches its end + grace (a later record shows that time has passed), or
- its timer fires (`close`): a durable timer set when the window opened, so a key that goes
  quiet still has its windows closed;
whichever comes first. A closed window takes no more records: a record all of whose windows
are closed is late. Windows a timer closed before the stream time passed them are remembered
(`closed`) until it does, so a late record cannot open them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from restate_stream.windows.aggregate import Aggregation


@dataclass(frozen=True, order=True)
class Window:
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive


def windows_of(time_ms: int, size_ms: int, hop_ms: int) -> list[Window]:
    """The windows, oldest first, that contain `time_ms` (one when hop == size: tumbling)."""
    start = time_ms - time_ms % hop_ms  # the latest start at or before time_ms
    starts = []
    while start > time_ms - size_ms:
        starts.append(start)
        start -= hop_ms
    return [Window(s, s + size_ms) for s in reversed(starts)]


@dataclass
class OpenWindow:
    window: Window
    acc: Any  # the aggregation's accumulator (JSON)
    records: int = 0
    updates: int = 0  # records added: numbers the `current` emissions


@dataclass
class Added:
    """What adding one record did."""

    updated: list[OpenWindow]  # windows the record went into, oldest first
    opened: list[Window]  # windows opened or changed (grown, merged): their timers are to be set
    closed: list[OpenWindow]  # windows the stream time passed (end + grace): emit them
    late: bool  # every window of the record was closed: it went nowhere
    # Sessions the record merged into one that starts earlier: gone, under their own start.
    merged_away: list[OpenWindow] = field(default_factory=list)


class KeyTimeline:
    """What every kind of a key's windows shares (fixed here, sliding.py, sessions.py): the
    stream time, the open windows by start, the closed windows still remembered (start ->
    end), and closing by the stream time or by a timer. Subclasses are dataclasses with these
    fields."""

    grace_ms: int
    stream_time: int | None
    open: dict[int, OpenWindow]
    closed: dict[int, int]

    @property
    def remember_ms(self) -> int:
        """How long after the stream time passes a closed window's end + grace it is still
        remembered as closed: as long as a record not late yet can reach it (sessions)."""
        return 0

    def closes_at(self, window: Window) -> int:
        return window.end + self.grace_ms

    def passed(self, window: Window) -> bool:
        """The stream time has reached the window's end + grace."""
        return self.stream_time is not None and self.closes_at(window) <= self.stream_time

    def is_closed(self, window: Window) -> bool:
        return self.passed(window) or self.closed.get(window.start) == window.end

    def _forgotten(self, window: Window) -> bool:
        if self.stream_time is None:
            return False
        return self.closes_at(window) + self.remember_ms <= self.stream_time

    def _advance(self, time_ms: int) -> int | None:
        """Move the stream time to `time_ms` if later; the stream time before."""
        before = self.stream_time
        self.stream_time = time_ms if before is None else max(before, time_ms)
        return before

    def _close_passed(self) -> list[OpenWindow]:
        """Remove and return, oldest first, the open windows the stream time passed; forget
        the closed ones no record can reach any more."""
        passed = sorted((o for o in self.open.values() if self.passed(o.window)), key=_start)
        for o in passed:
            del self.open[o.window.start]
            self.closed[o.window.start] = o.window.end
        self.closed = {s: e for s, e in self.closed.items() if not self._forgotten(Window(s, e))}
        return passed

    def close(self, start: int, end: int | None = None) -> OpenWindow | None:
        """A window's timer fired: the window if it was still open (to emit), else None
        (it closed already, by the stream time or an earlier firing, or it is stale: the
        window it was set for has grown or merged into another since, which has its own)."""
        entry = self.open.get(start)
        if entry is None or (end is not None and entry.window.end != end):
            return None
        del self.open[start]
        if not self._forgotten(entry.window):
            self.closed[start] = entry.window.end
        return entry

    def timer_delay_ms(self, window: Window) -> int:
        """How long from now the window's timer waits: the event time still to go until its
        end + grace, counted from the stream time (for live records about the wall clock's
        end + grace; replaying history, the time a window has to collect its records)."""
        return max(0, self.closes_at(window) - (self.stream_time or window.start))

    def _windows_json(self) -> dict[str, Any]:
        return {
            "stream_time": self.stream_time,
            "open": [
                [o.window.start, o.window.end, o.acc, o.records, o.updates]
                for o in sorted(self.open.values(), key=_start)
            ],
            "closed": [[s, e] for s, e in sorted(self.closed.items())],
        }

    def _load_windows(self, data: dict[str, Any]) -> None:
        self.stream_time = data["stream_time"]
        for start, end, acc, records, updates in data["open"]:
            self.open[start] = OpenWindow(Window(start, end), acc, records, updates)
        self.closed = {start: end for start, end in data["closed"]}


@dataclass
class KeyWindows(KeyTimeline):
    """Tumbling and hopping windows of one key."""

    size_ms: int
    hop_ms: int
    grace_ms: int
    stream_time: int | None = None
    open: dict[int, OpenWindow] = field(default_factory=dict)  # by start
    closed: dict[int, int] = field(default_factory=dict)  # start -> end: closed by a timer

    def add(self, time_ms: int, value: Any, aggregation: Aggregation) -> Added:
        """Fold `value`, at event time `time_ms`, into the windows it falls in.

        Raises what the aggregation raises for a value it cannot take (WindowValueError),
        before anything changes."""
        targets = [w for w in windows_of(time_ms, self.size_ms, self.hop_ms)]
        before = self._advance(time_ms)
        targets = [w for w in targets if not self.is_closed(w)]
        updates: list[tuple[Window, Any]] = []
        try:
            for w in targets:
                current = self.open.get(w.start)
                acc = current.acc if current is not None else aggregation.initial()
                updates.append((w, aggregation.add(acc, value)))
        except Exception:
            self.stream_time = before
            raise
        opened = [w for w, _ in updates if w.start not in self.open]
        updated = []
        for w, acc in updates:
            entry = self.open.setdefault(w.start, OpenWindow(w, acc))
            entry.acc, entry.records, entry.updates = acc, entry.records + 1, entry.updates + 1
            updated.append(entry)
        return Added(updated, opened, self._close_passed(), late=not targets)

    def to_json(self) -> dict[str, Any]:
        return self._windows_json()

    @classmethod
    def from_json(
        cls, data: dict[str, Any] | None, size_ms: int, hop_ms: int, grace_ms: int
    ) -> KeyWindows:
        windows = cls(size_ms, hop_ms, grace_ms)
        if data:
            windows._load_windows(data)
        return windows


def _start(o: OpenWindow) -> int:
    return o.window.start

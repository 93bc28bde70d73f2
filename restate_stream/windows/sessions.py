"""Session windows of one key: records less than `gap` apart form one session.

As in Flink, each record at time t stands for the interval [t, t + gap); overlapping
intervals are one session, [its first record's time, its last record's time + gap), `end`
exclusive like every window's. A record whose interval overlaps two sessions bridges them:
they merge into one, their aggregates combined with the aggregation's `merge`.

A session closes when the stream time reaches its end + grace (no record came for gap +
grace), or when its timer fires. The timer names the session it was set for, [start, end):
a session that grows or merges gets a new timer, and the old one, firing for a session that
is no longer open as such, does nothing. A record that would join a closed session (by
either) is late: closed sessions are remembered until no record not late yet can reach them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from restate_stream.windows.aggregate import Aggregation
from restate_stream.windows.assign import Added, KeyTimeline, OpenWindow, Window


def _overlap(a: Window, b: Window) -> bool:
    return a.start < b.end and b.start < a.end


@dataclass
class KeySessions(KeyTimeline):
    gap_ms: int
    grace_ms: int
    stream_time: int | None = None
    open: dict[int, OpenWindow] = field(default_factory=dict)  # by start
    closed: dict[int, int] = field(default_factory=dict)  # start -> end: closed by a timer

    @property
    def remember_ms(self) -> int:
        # A record not late yet (its own [t, t + gap) + grace ahead of the stream time) can
        # still overlap a session up to gap after that session's end + grace.
        return self.gap_ms

    def add(self, time_ms: int, value: Any, aggregation: Aggregation) -> Added:
        """Fold `value`, at event time `time_ms`, into its session, merging the sessions it
        bridges. Raises what the aggregation raises, before anything changes."""
        own = OpenWindow(Window(time_ms, time_ms + self.gap_ms), None, 1, 1)
        own.acc = aggregation.add(aggregation.initial(), value)
        before = self._advance(time_ms)
        joined = sorted(
            (o for o in self.open.values() if _overlap(o.window, own.window)),
            key=lambda o: o.window.start,
        )
        pieces = sorted([*joined, own], key=lambda o: o.window.start)
        merged = Window(pieces[0].window.start, max(o.window.end for o in pieces))
        timer_closed = (Window(s, e) for s, e in self.closed.items())
        if self.passed(merged) or any(_overlap(merged, w) for w in timer_closed):
            return Added([], [], self._close_passed(), late=True)
        try:
            acc = pieces[0].acc
            for piece in pieces[1:]:
                acc = aggregation.merge(acc, piece.acc)
        except Exception:
            self.stream_time = before
            raise
        for o in joined:
            del self.open[o.window.start]
        session = OpenWindow(
            merged,
            acc,
            records=sum(o.records for o in pieces),
            updates=sum(o.updates for o in pieces),
        )
        self.open[merged.start] = session
        unchanged = len(joined) == 1 and joined[0].window == merged
        merged_away = [o for o in joined if o.window.start != merged.start]
        opened = [] if unchanged else [merged]
        return Added([session], opened, self._close_passed(), late=False, merged_away=merged_away)

    def to_json(self) -> dict[str, Any]:
        return self._windows_json()

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, gap_ms: int, grace_ms: int) -> KeySessions:
        sessions = cls(gap_ms, grace_ms)
        if data:
            sessions._load_windows(data)
        return sessions

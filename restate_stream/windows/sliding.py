"""Sliding windows of one key: a window of `size` ending at each record.

A record at time t has its own window [t + 1 - size, t + 1): the `size` milliseconds that end
with the record's, `end` exclusive like every window's. It holds every record of the key in
that range, those that came before it and those that come after it out of order, as Kafka
Streams' sliding windows do for the window ending at a record (Kafka Streams also makes the
window that starts just after each record; this does not). Records at the same millisecond
share a window.

A record is late when its own window has closed (by the stream time reaching end + grace, or
its timer): it is then counted nowhere. To build the window of a record that comes out of
order, each record's contribution is kept (by time, merged with the aggregation's `merge`)
until no window that can still open reaches back to it: size + grace behind the stream time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from restate_stream.windows.aggregate import Aggregation
from restate_stream.windows.assign import Added, KeyTimeline, OpenWindow, Window


@dataclass
class KeySliding(KeyTimeline):
    size_ms: int
    grace_ms: int
    stream_time: int | None = None
    open: dict[int, OpenWindow] = field(default_factory=dict)  # by start
    closed: dict[int, int] = field(default_factory=dict)  # start -> end: closed by a timer
    # time -> [the records' merged accumulator, how many]: what windows opening later need
    kept: dict[int, list[Any]] = field(default_factory=dict)

    def own_window(self, time_ms: int) -> Window:
        return Window(time_ms + 1 - self.size_ms, time_ms + 1)

    def add(self, time_ms: int, value: Any, aggregation: Aggregation) -> Added:
        """Fold `value`, at event time `time_ms`, into its own window and the open windows
        that reach over it. Raises what the aggregation raises, before anything changes."""
        contribution = aggregation.add(aggregation.initial(), value)
        own = self.own_window(time_ms)
        before = self._advance(time_ms)
        if self.is_closed(own):
            return Added([], [], self._close_passed(), late=True)
        try:
            kept = self.kept.get(time_ms)
            merged = contribution if kept is None else aggregation.merge(kept[0], contribution)
            containing = [o for o in self.open.values() if o.window.start <= time_ms < o.window.end]
            grown = [aggregation.merge(o.acc, contribution) for o in containing]
            opened: list[Window] = []
            if own.start not in self.open:
                opened = [own]
                earlier = [self.kept[t] for t in sorted(self.kept) if own.start <= t < time_ms]
                acc, records = contribution, 1 + sum(k[1] for k in earlier)
                for piece in reversed(earlier):  # the latest first: merge keeps time order
                    acc = aggregation.merge(piece[0], acc)
        except Exception:
            self.stream_time = before
            raise
        self.kept[time_ms] = [merged, 1 if kept is None else kept[1] + 1]
        for o, acc_grown in zip(containing, grown, strict=True):
            o.acc, o.records, o.updates = acc_grown, o.records + 1, o.updates + 1
        if opened:
            self.open[own.start] = OpenWindow(own, acc, records, 1)
        updated = sorted(
            {o.window.start: o for o in [*containing, self.open[own.start]]}.values(),
            key=lambda o: o.window.start,
        )
        horizon = (self.stream_time or 0) - self.size_ms - self.grace_ms
        self.kept = {t: k for t, k in self.kept.items() if t > horizon}
        return Added(updated, opened, self._close_passed(), late=False)

    def to_json(self) -> dict[str, Any]:
        return {**self._windows_json(), "kept": [[t, *k] for t, k in sorted(self.kept.items())]}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, size_ms: int, grace_ms: int) -> KeySliding:
        sliding = cls(size_ms, grace_ms)
        if data:
            sliding._load_windows(data)
            sliding.kept = {t: [acc, records] for t, acc, records in data["kept"]}
        return sliding

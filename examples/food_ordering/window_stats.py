"""The demo's windows, read back from Kafka and checked against what was published.

restate-stream's window objects publish each closed window to a results topic
(`restaurant-order-counts`, `driver-speeds`) as `{"key", "start", "end", "value", "records",
"final"}` in a CloudEvents envelope. `results` reads them (a window emitted twice across a
crash has the same event id: kept once); `expected` computes, independently of restate-stream,
what each window must hold from the records of its source topic (`orders`, `driver-updates`)
and their Kafka timestamps, which are the windows' event time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.consume import ConsumedRecord, read_topic
from restate_stream.runtime.formats import unwrap_cloudevent
from restate_stream.windows.settings import WindowSpec

# Means are compared with this much room: a float sum's last bit depends on the order of adding.
MEAN_TOLERANCE = 1e-9


@dataclass(frozen=True)
class WindowResult:
    key: str
    start: int  # epoch ms
    end: int  # epoch ms, exclusive
    value: Any
    records: int


def _data(record: ConsumedRecord) -> tuple[Any, str | None]:
    data, event_id, _ = unwrap_cloudevent(json.loads(record.value or b"null"))
    return data, event_id


def results(bootstrap: str, topic: str) -> list[WindowResult]:
    """Every final window on `topic`, once each, by key and start."""
    found: dict[object, WindowResult] = {}
    for record in read_topic(bootstrap, topic):
        data, event_id = _data(record)
        if not isinstance(data, dict) or not data.get("final"):
            continue
        found[event_id or (record.partition, record.offset)] = WindowResult(
            data["key"], data["start"], data["end"], data["value"], data["records"]
        )
    return sorted(found.values(), key=lambda w: (w.key, w.start))


def window_starts(time_ms: int, size_ms: int, advance_ms: int) -> list[int]:
    """The starts of the epoch-aligned windows of `size_ms`, one every `advance_ms`, that hold
    `time_ms` (one for a tumbling window, size/advance for a hopping one)."""
    first = (time_ms - size_ms) // advance_ms * advance_ms + advance_ms
    return [s for s in range(first, time_ms + 1, advance_ms) if s <= time_ms < s + size_ms]


def sizes_ms(spec: WindowSpec) -> tuple[int, int]:
    size = round(spec.length.total_seconds() * 1000)
    return size, round(spec.hop.total_seconds() * 1000)


@dataclass(frozen=True)
class Expected:
    records: int
    value: float
    end: int = 0  # epoch ms, exclusive


def expected(
    records: Iterable[ConsumedRecord],
    spec: WindowSpec,
    keys: set[str],
    value_of: Callable[[Any], float] | None = None,
) -> dict[tuple[str, int], Expected]:
    """(key, start) -> what the window must hold, from the source records of `keys`: the count
    of its records, or with `value_of` the mean of value_of(each record's data)."""
    size, advance = sizes_ms(spec)
    values: dict[tuple[str, int], list[float]] = {}
    for record in records:
        key = (record.key or b"").decode()
        if key not in keys or record.timestamp_ms is None:
            continue
        data, _ = _data(record)
        for start in window_starts(record.timestamp_ms, size, advance):
            values.setdefault((key, start), []).append(value_of(data) if value_of else 0.0)
    return {
        at: Expected(len(vs), sum(vs) / len(vs) if value_of else len(vs), at[1] + size)
        for at, vs in values.items()
    }


def differences(
    got: list[WindowResult],
    want: dict[tuple[str, int], Expected],
    keys: set[str],
    ended_before: int | None = None,
) -> list[str]:
    """What differs between the emitted windows of `keys` and those expected, in words; with
    `ended_before` (epoch ms), only of the windows that end before it (the rest may be open)."""
    problems = []
    emitted = {(w.key, w.start): w for w in got if w.key in keys}
    if ended_before is not None:
        emitted = {at: w for at, w in emitted.items() if w.end < ended_before}
        want = {at: e for at, e in want.items() if e.end < ended_before}
    for at in sorted(want.keys() - emitted.keys()):
        problems.append(f"{at[0]}: window at {at[1]} not emitted")
    for at in sorted(emitted.keys() - want.keys()):
        problems.append(f"{at[0]}: window at {at[1]} emitted, no record falls in it")
    for at in sorted(want.keys() & emitted.keys()):
        w, e = emitted[at], want[at]
        if w.records != e.records or abs(float(w.value) - e.value) > MEAN_TOLERANCE:
            problems.append(
                f"{at[0]}: window at {at[1]} holds {w.records} record(s), value {w.value}; "
                f"published: {e.records}, value {e.value}"
            )
    return problems

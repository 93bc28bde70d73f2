"""A window binding (a tumbling count) and a table binding beside a fault case's per-record
binding, in the same bindings file, worker and fault. A seeded generator feeds them while the
case's records flow: event times up to JITTER_MS behind the wall clock (out of order, within
the grace), busy keys with a quiet period each, quiet keys that stop a little before the
fault (their last window can only be closed by its durable timer, set before the fault and
due after the recovery), table updates with tombstones. The truth is computed from the topics
read back: each window's count, each table key's last value. Each window must be emitted once
with that count, each table key hold that value, and a quiet key's last window be emitted
within its end + grace + QUIET_SLACK_S.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from connectors import Record, produce_records
from connectors.consume import ConsumedRecord, read_topic
from restate_stream._util.poll import PollTimeout, apoll
from restate_stream.control.admin import AdminApiError, AdminClient, AdminUnavailableError
from restate_stream.runtime.dead_letter import parse_record
from restate_stream.runtime.formats.cloudevents import unwrap_cloudevent
from restate_stream.testing import object_state, wait_until
from tests.faults.conftest import STREAMS_ROWS, StreamsRow
from tests.faults.lag import wait_committed

# The grace covers a fault's stall (up to ~15 s here) and the catch-up after it: a window's
# timer fires at its end + grace, and a record of it still unread then would be late.
SIZE_MS, GRACE_MS, JITTER_MS = 2_000, 30_000, 2_000
QUIET_SLACK_S = 8.0  # a quiet key's last window: emitted within end + grace + this
TICK_S = 0.5  # the generator produces a chunk per tick
BUSY, QUIET, TABLE_KEYS = 8, 4, 20


@dataclass(frozen=True)
class Copy:
    """One emission of a window on the results topic."""

    event_id: str
    count: int
    at_ms: int  # its Kafka timestamp: when the publisher produced it

    def same_as(self, other: Copy) -> bool:
        """The same emission again (the publisher's window): a dedupe consumer drops it."""
        return (self.event_id, self.count) == (other.event_id, other.count)


class Streams:
    """The two bindings of one case (`run`: its id, in every name)."""

    def __init__(self, run: str, bootstrap: str) -> None:
        self.run, self.bootstrap = run, bootstrap
        self.window, self.table = f"win-{run}", f"tab-{run}"
        self.results, self.dead = f"win-{run}.results", f"win-{run}.dlq"
        self.rng = random.Random(run)  # the seed: the run id, printed with the case
        self.quiet_keys = [f"{run}-q{i}" for i in range(QUIET)]
        self.stop = threading.Event()
        # Set a little before the fault: the quiet keys' last windows open before it and
        # their timers are due (end + grace) after the recovery.
        self.quiet = threading.Event()

    @property
    def groups(self) -> dict[str, str]:
        """Each binding's consumer group and its topic."""
        return {f"faults.{t}": t for t in (self.window, self.table)}

    def topics_yaml(self, cluster: str) -> str:
        return "".join(
            f"  {t}: {{cluster: {cluster}, partitions: {n}}}\n"
            for t, n in ((self.window, 4), (self.results, 2), (self.dead, 1), (self.table, 4))
        )

    def bindings_yaml(self, extra: str) -> str:
        """Both bindings; `extra`: lines every binding of the case has (delivery, retry)."""
        window = (
            f"{{type: tumbling, size: {SIZE_MS}ms, grace: {GRACE_MS}ms, time_field: ts, "
            f"to: {self.results}, late: dead_letter}}"
        )
        return (
            f"  - name: {self.window}\n    topic: {self.window}\n    group: faults.{self.window}\n"
            f"    dead_letter: {self.dead}\n    window: {window}\n{extra}"
            f"  - name: {self.table}\n    topic: {self.table}\n    group: faults.{self.table}\n"
            f"    table: true\n{extra}"
        )

    def produce(self) -> None:
        """Produce until `stop` is set, a chunk per tick on a wall-clock schedule."""
        rng = self.rng
        busy = [f"{self.run}-b{i}" for i in range(BUSY)]
        pauses = {k: (start := rng.uniform(2, 14), start + rng.uniform(3, 8)) for k in busy}
        began, version = time.monotonic(), 0
        for tick in range(1_000_000):
            if self.stop.is_set():
                return
            if (ahead := began + tick * TICK_S - time.monotonic()) > 0:
                time.sleep(ahead)  # pacing the load, not waiting for a condition
            elapsed, now_ms = time.monotonic() - began, int(time.time() * 1000)
            live = [k for k in busy if not pauses[k][0] <= elapsed < pauses[k][1]]
            live += [] if self.quiet.is_set() else self.quiet_keys
            clicks = [
                Record(k, json.dumps({"ts": now_ms - rng.randrange(JITTER_MS)}))
                for k in live
                for _ in range(rng.randint(1, 3))
            ]
            updates = []
            for _ in range(4):
                version += 1
                tombstone = rng.random() < 0.1
                value = None if tombstone else json.dumps({"v": version, "ts": now_ms})
                updates.append(Record(f"{self.run}-t{rng.randrange(TABLE_KEYS)}", value))
            produce_records(self.bootstrap, self.window, clicks)
            produce_records(self.bootstrap, self.table, updates)

    def _read(self, topic: str) -> list[ConsumedRecord]:
        return read_topic(self.bootstrap, topic, timeout=120)

    def truth(self) -> tuple[Counter[tuple[str, int]], dict[str, Any]]:
        """Each window's count and each table key's last value (None: deleted), from the
        topics as Kafka holds them."""
        counts: Counter[tuple[str, int]] = Counter()
        for r in self._read(self.window):
            assert r.key is not None and r.value is not None
            ts = json.loads(r.value)["ts"]
            counts[(r.key.decode(), ts - ts % SIZE_MS)] += 1
        last: dict[str, Any] = {}
        for r in self._read(self.table):  # a key's records are in one partition, in order
            assert r.key is not None
            last[r.key.decode()] = None if r.value is None else json.loads(r.value)
        return counts, last

    def emitted(self) -> dict[tuple[str, int], list[Copy]]:
        """The results topic: each window's copies, in the order they were published."""
        copies: dict[tuple[str, int], list[Copy]] = defaultdict(list)
        for r in self._read(self.results):
            where = f"{self.results}[{r.partition}]@{r.offset}"
            assert r.value is not None and r.timestamp_ms is not None, where
            data, event_id, _ = unwrap_cloudevent(json.loads(r.value))
            assert event_id is not None and data["final"], f"{where}: {r.value!r}"
            assert data["end"] - data["start"] == SIZE_MS, f"{where}: {r.value!r}"
            copies[(data["key"], data["start"])].append(
                Copy(event_id, data["value"], r.timestamp_ms)
            )
        return dict(copies)

    async def check(self, case: str, admin: AdminClient) -> list[str]:
        """After the generator stopped: wait until every window of the truth was emitted and
        both bindings' groups committed to the end, compare, record the row; returns what is
        wrong (the caller asserts, after its own checks)."""
        counts, last = await asyncio.to_thread(self.truth)
        # The last window's timer is due at its end + grace after the last record.
        await wait_until(
            lambda: asyncio.to_thread(self.emitted),
            lambda got: set(counts) <= set(got),
            timeout=(SIZE_MS + GRACE_MS) / 1000 + 120,
            interval=2.0,
            describe=lambda got: f"{len(set(counts) & set(got))}/{len(counts)} windows emitted",
        )
        try:  # every record's invocation accepted: the table's last values are applied
            await wait_committed(
                self.bootstrap, {f"faults.{t}": t for t in (self.window, self.table)}
            )
            uncommitted = ""
        except PollTimeout as exc:  # compared all the same, and reported
            uncommitted = str(exc)
        emitted = await asyncio.to_thread(self.emitted)
        letters = await asyncio.to_thread(self._read, self.dead)
        late = len(letters)
        table = await apoll(
            lambda: object_state(admin, self.table, "value"),
            what=f"{self.table} state",
            timeout=60,
            interval=0.5,
            until=lambda _: True,
            retry_on=(AdminApiError, AdminUnavailableError),
        )
        first = {w: cs[0] for w, cs in emitted.items()}
        wrong = [
            w for w in set(counts) | set(first) if w not in first or first[w].count != counts[w]
        ]
        twice = [w for w, cs in emitted.items() if not all(c.same_as(cs[0]) for c in cs)]
        same_id = sum(len(cs) - 1 for w, cs in emitted.items() if w not in twice)
        keys_wrong = [k for k in set(last) | set(table) if table.get(k) != last.get(k)]
        row = StreamsRow(
            case,
            len(counts),
            len(wrong),
            len(twice),
            same_id,
            late,
            len(last),
            len(keys_wrong),
            self.quiet_delay(counts, first),
        )
        STREAMS_ROWS.append(row)
        print(f"\n(generator seed {self.run!r})\n{StreamsRow.HEADER}\n{row.line()}")
        problems = [uncommitted] if uncommitted else []
        if wrong or twice or late:
            shown = {w: (counts.get(w), emitted.get(w)) for w in sorted(wrong + twice)[:5]}
            said = [parse_record(r.value or b"").to_json()["error"] for r in letters[:3]]
            problems.append(f"windows wrong or emitted twice: {shown}; {late} late: {said}")
        if keys_wrong:
            values = {k: (table.get(k), last.get(k)) for k in keys_wrong[:5]}
            problems.append(f"table keys not their last record's value (state, topic): {values}")
        if not row.quiet_delay <= QUIET_SLACK_S:  # nan too: no quiet window emitted
            problems.append(
                f"a quiet key's last window emitted {row.quiet_delay:.1f}s after its end + "
                f"grace (at most {QUIET_SLACK_S}s expected)"
            )
        return problems

    def quiet_delay(
        self, counts: Counter[tuple[str, int]], first: dict[tuple[str, int], Copy]
    ) -> float:
        """The longest time past end + grace that a quiet key's last window was published:
        only its timer closes it (no later record of the key moves its stream time)."""
        delays = []
        for key in self.quiet_keys:
            starts = [s for k, s in counts if k == key]
            if starts and (copy := first.get((key, max(starts)))) is not None:
                delays.append((copy.at_ms - (max(starts) + SIZE_MS + GRACE_MS)) / 1000)
        return max(delays, default=float("nan"))

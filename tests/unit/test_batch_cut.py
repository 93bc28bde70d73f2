"""How long a cut holds its first record: at most max_wait, against a consumer that behaves as
librdkafka's consume() does (it waits until it has as many records as asked for, or its whole
timeout passed). Timed with real sleeps; the bounds leave several times the expected time."""

from __future__ import annotations

import asyncio
import time

from connectors.group_consumer import PolledRecord
from restate_stream.batch import BatchDelivery
from restate_stream.batch.delivery import IDLE_POLL
from tests.unit.test_batch import BATCHED, parse
from tests.unit.test_consumer_delivery import CONSUMER


class _Consumer:
    """`ready` records already fetched, then one more every `every` seconds (none: 0)."""

    generation = 0

    def __init__(self, ready: int, every: float = 0.0) -> None:
        self.ready, self.every = ready, every
        self.start = time.monotonic()
        self.taken = 0

    def _fetched(self) -> int:
        later = int((time.monotonic() - self.start) / self.every) if self.every else 0
        return self.ready + later

    async def poll(self, max_records: int, timeout: float) -> list[PolledRecord]:
        end = time.monotonic() + timeout
        while self._fetched() - self.taken < max_records and time.monotonic() < end:
            await asyncio.sleep(0.002)
        n = min(max_records, self._fetched() - self.taken)
        first, self.taken = self.taken, self.taken + n
        return [PolledRecord("clicks", 0, o, 0, b"k", b"{}", ()) for o in range(first, first + n)]


async def cut(delivery: BatchDelivery, consumer: _Consumer) -> tuple[int, float]:
    started = time.monotonic()
    records = await delivery._cut(consumer, asyncio.Event())  # type: ignore[arg-type]
    assert [r.offset for r in records] == list(range(len(records)))
    return len(records), time.monotonic() - started


async def test_a_batch_cut_holds_its_first_record_max_wait_not_the_idle_poll() -> None:
    (binding,) = parse(BATCHED).bindings  # max_records 500, max_wait 50 ms
    # One record a millisecond: 500 would take half a second.
    records, seconds = await cut(BatchDelivery(binding, {}, "http://ingress"), _Consumer(1, 0.001))
    # Asking for 500 at once held the first record IDLE_POLL (0.2 s), then max_wait on top.
    assert seconds < IDLE_POLL
    assert 10 <= records < 500


async def test_a_record_by_record_cut_takes_what_is_fetched_without_waiting() -> None:
    (binding,) = parse(CONSUMER).bindings  # max_wait 0
    records, seconds = await cut(BatchDelivery(binding, {}, "http://ingress"), _Consumer(50))
    assert records == 50
    assert seconds < IDLE_POLL / 2

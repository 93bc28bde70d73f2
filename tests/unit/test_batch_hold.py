"""While the consumer is behind (its cuts fill to max_records and Kafka holds enough to fill
the window), a `per: key` binding's sends are held until the records in flight reach their
bound, the consumer catches up, or a bounded wait passes: each key's records of several cuts
then travel in one invocation instead of one per cut. Counted in sends, not timed (but for the
bounded wait)."""

from __future__ import annotations

import asyncio
import dataclasses

from connectors.group_consumer import PolledRecord
from restate_stream.batch import BatchDelivery
from restate_stream.bindings import Binding
from tests.unit.test_batch import BATCHED, parse
from tests.unit.test_batch_pacing import _Ingress, settle

FULL = 500  # BATCHED's max_records


def binding(per: str = "key") -> Binding:
    (b,) = parse(BATCHED.replace("max_wait: 50ms}", f"max_wait: 50ms, per: {per}}}")).bindings
    assert isinstance(b, Binding)
    return b


def cut(start: int, size: int, keys: tuple[bytes, ...] = (b"a", b"b")) -> list[PolledRecord]:
    return [
        PolledRecord("clicks", 0, o, 1_700_000_000_000, keys[o % len(keys)], b"{}", ())
        for o in range(start, start + size)
    ]


def delivery(ingress: _Ingress, per: str = "key", **options: float) -> BatchDelivery:
    b = binding(per)
    # Paced by acceptance only: what holds a send here is being behind, not completion.
    d = BatchDelivery(b, {}, "http://ingress", completion_wait=0, **options)  # type: ignore[arg-type]
    d._client = ingress  # type: ignore[assignment]
    return d


class _Backlog:
    """A consumer whose backlog answers at once."""

    def __init__(self, behind: int) -> None:
        self.behind = behind

    async def backlog(self) -> int:
        return self.behind


async def step(d: BatchDelivery, records: list[PolledRecord], behind: int = 10**6) -> None:
    """What one turn of the delivery's loop does with a cut, `behind` records left in Kafka."""
    d._dispatch(records)
    await d._hold_or_release(_Backlog(behind), len(records))  # type: ignore[arg-type]


def sizes(ingress: _Ingress) -> list[tuple[str, int]]:
    return [(key, len(offsets)) for key, offsets in ingress.sends]


async def test_behind_a_keys_records_of_several_cuts_join_one_send() -> None:
    ingress = _Ingress()
    d = delivery(ingress)
    await step(d, cut(0, FULL))  # full: behind
    await settle()
    assert ingress.sends == []  # held
    await step(d, cut(FULL, 100))  # not full: caught up, the held sends go
    await settle()
    # Without the hold: a and b sent 250 each from the first cut, then 50 each.
    assert sorted(sizes(ingress)) == [("a", 300), ("b", 300)]
    assert d._completed_offsets() == {0: FULL + 100}
    await d._abandon()


async def test_a_full_cut_with_too_little_left_in_kafka_to_fill_the_window_is_not_held() -> None:
    """A stream's moment of stall fills a cut, but holding would wait out the bound for a
    window the backlog cannot fill: only latency."""
    ingress = _Ingress()
    d = delivery(ingress, max_records_in_flight=10 * FULL)
    await step(d, cut(0, FULL), behind=3 * FULL)  # room for 9 more cuts, 3 in Kafka
    await settle()
    assert sorted(sizes(ingress)) == [("a", 250), ("b", 250)]
    await step(d, cut(FULL, FULL), behind=9 * FULL)  # room for 8: the backlog fills it
    await settle()
    assert sorted(sizes(ingress)) == [("a", 250), ("b", 250)]  # held
    await d._abandon()


class _SlowBacklog:
    """A consumer whose backlog answers after a few turns of the loop, as the hop to the
    consumer's thread does."""

    def __init__(self, behind: int) -> None:
        self.behind = behind

    async def backlog(self) -> int:
        await settle()
        return self.behind


async def test_a_full_cuts_sends_wait_for_the_backlogs_answer() -> None:
    """Not posted during the hop that asks the backlog: they would carry one cut's records."""
    ingress = _Ingress()
    d = delivery(ingress)
    d._dispatch(cut(0, FULL))
    await d._hold_or_release(_SlowBacklog(10**6), FULL)  # type: ignore[arg-type]
    await settle()
    assert ingress.sends == []  # held: behind
    d._dispatch(cut(FULL, FULL))
    await d._hold_or_release(_SlowBacklog(0), FULL)  # type: ignore[arg-type]
    await settle()
    assert sorted(sizes(ingress)) == [("a", 500), ("b", 500)]  # caught up: both cuts in one
    await d._abandon()


async def test_held_sends_go_once_the_records_in_flight_reach_their_bound() -> None:
    ingress = _Ingress()
    d = delivery(ingress, max_records_in_flight=2 * FULL)
    await step(d, cut(0, FULL))
    await settle()
    assert ingress.sends == []
    await step(d, cut(FULL, FULL))  # behind still, but the window is full: only posting makes room
    await settle()
    assert sorted(sizes(ingress)) == [("a", 500), ("b", 500)]
    await d._abandon()


async def test_a_held_send_goes_after_the_bounded_wait() -> None:
    ingress = _Ingress()
    d = delivery(ingress, hold_while_behind=0.05)
    await step(d, cut(0, FULL))
    await settle()
    assert ingress.sends == []
    await asyncio.sleep(0.2)
    assert sorted(sizes(ingress)) == [("a", 250), ("b", 250)]
    await d._abandon()


async def test_a_rebalance_drain_posts_held_sends() -> None:
    ingress = _Ingress()
    d = delivery(ingress)
    await step(d, cut(0, FULL))
    await settle()
    assert await d._drain(5.0) == {0: FULL}
    assert sorted(sizes(ingress)) == [("a", 250), ("b", 250)]


async def test_per_partition_and_per_record_sends_are_never_held() -> None:
    ingress = _Ingress()
    d = delivery(ingress, per="partition")
    await step(d, cut(0, FULL))
    await settle()
    assert sizes(ingress) == [("clicks%2F0", FULL)]
    await d._abandon()
    held = delivery(_Ingress(), hold_while_behind=0)
    assert held.hold_while_behind == 0
    record_by_record = dataclasses.replace(binding(), batch=None, delivery="consumer")
    assert BatchDelivery(record_by_record, {}, "x").hold_while_behind == 0

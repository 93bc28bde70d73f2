"""A batched binding's sends of one key wait for the previous invocation to complete (learnt
by attaching to it through the ingress), so records arriving meanwhile join one send instead
of each cut making its own; commits still follow acceptance, and a key whose invocation does
not complete is paced by acceptance again after a bounded wait, without holding other keys.
Counted in sends and attaches, not timed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from connectors.group_consumer import PolledRecord
from restate_stream.batch import BatchDelivery
from restate_stream.batch.ingress_client import Answer
from restate_stream.batch.sends import idempotency_key
from restate_stream.batch.wire import decode_batch
from restate_stream.bindings import Binding
from tests.unit.test_batch import BATCHED, parse


def binding() -> Binding:
    (b,) = parse(BATCHED).bindings
    return b


def record(offset: int, key: bytes) -> PolledRecord:
    return PolledRecord("clicks", 0, offset, 1_700_000_000_000, key, b"{}", ())


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status

    async def text(self, errors: str = "strict") -> str:
        return ""

    async def read(self) -> bytes:
        return b"null"


class _Held:
    def __init__(self, future: asyncio.Future[int]) -> None:
        self.future = future

    async def __aenter__(self) -> _Response:
        return _Response(await self.future)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class _Ingress:
    """Accepts every send at once (the ingress client's post), or with `hold_acceptance`
    when the test accepts it; holds each attach (aiohttp's get) until the test completes the
    invocation. Records each send's (object key, offsets) and each attach's object key and
    idempotency key."""

    def __init__(self, *, hold_acceptance: bool = False) -> None:
        self.sends: list[tuple[str, list[int]]] = []
        self.attached: list[str] = []
        self.attached_ids: list[str] = []
        self.hold_acceptance = hold_acceptance
        self._running: dict[str, list[asyncio.Future[int]]] = {}
        self._posted: list[asyncio.Future[None]] = []

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        key = path.split("/")[-3]  # Clicks/{key}/on_clicks/send
        self.sends.append((key, [r.offset for r in decode_batch(body)]))
        if self.hold_acceptance:
            accepted = asyncio.get_running_loop().create_future()
            self._posted.append(accepted)
            await accepted
        return Answer(202, b"")

    def accept_all(self) -> None:
        for future in self._posted:
            future.set_result(None)
        self._posted.clear()

    def get(self, url: str) -> _Held:
        *_, key, _, idempotency, _ = url.split("/")  # .../Clicks/{key}/on_clicks/{id}/attach
        self.attached.append(key)
        self.attached_ids.append(idempotency)
        future = asyncio.get_running_loop().create_future()
        self._running.setdefault(key, []).append(future)
        return _Held(future)

    def complete(self, key: str) -> None:
        for future in self._running.pop(key, []):
            future.set_result(200)


def delivery(ingress: _Ingress, **options: Any) -> BatchDelivery:
    d = BatchDelivery(binding(), {}, "http://ingress", **options)
    d._client = ingress  # type: ignore[assignment]
    if d._pacer is not None:
        d._pacer.open(ingress, "http://ingress")  # type: ignore[arg-type]
    return d


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_keys_records_join_while_its_previous_invocation_runs() -> None:
    ingress = _Ingress()
    d = delivery(ingress)
    d._dispatch([record(0, b"a")])
    await settle()
    for offset in (1, 2, 3):  # three more cuts while a@0's invocation runs
        d._dispatch([record(offset, b"a")])
        await settle()
    # Accepted is committed, whether or not the invocation completed.
    assert d._completed_offsets() == {0: 1}
    # Paced by acceptance alone, each cut was a send of its own (4 invocations); here a@1..3
    # wait in one send for a@0 to complete.
    assert ingress.sends == [("a", [0])]
    assert ingress.attached == ["a"]
    ingress.complete("a")
    await settle()
    assert ingress.sends == [("a", [0]), ("a", [1, 2, 3])]
    assert d._completed_offsets() == {0: 4}
    await d._abandon()


async def test_a_full_send_does_not_wait_for_the_previous_invocation() -> None:
    """The wait is for records to join the send: a send of max_records (BATCHED: 500) can
    take none, so it goes on acceptance, and no attach is made for it."""
    ingress = _Ingress()
    d = delivery(ingress)
    d._dispatch([record(0, b"a")])
    await settle()
    d._dispatch([record(o, b"a") for o in range(1, 501)])  # a full send's worth
    await settle()
    assert [(key, len(offsets)) for key, offsets in ingress.sends] == [("a", 1), ("a", 500)]
    assert ingress.attached == []  # a@0's invocation is still running
    d._dispatch([record(501, b"a")])
    await settle()
    assert len(ingress.sends) == 2
    assert ingress.attached == ["a"]  # a@501 waits for the full send's invocation
    ingress.complete("a")
    await settle()
    assert ingress.sends[-1] == ("a", [501])
    await d._abandon()


async def test_a_key_waits_only_for_its_own_previous_invocation() -> None:
    ingress = _Ingress()
    d = delivery(ingress)
    d._dispatch([record(0, b"a"), record(1, b"b")])
    await settle()
    d._dispatch([record(2, b"a"), record(3, b"b")])
    await settle()
    ingress.complete("b")
    await settle()
    assert sorted(ingress.sends) == [("a", [0]), ("b", [1]), ("b", [3])]
    # The second cut is not committed (a@2 is not posted), the first one is.
    assert d._completed_offsets() == {0: 2}
    await d._abandon()


async def test_a_stuck_invocation_delays_its_keys_next_send_once_then_not_again() -> None:
    ingress = _Ingress()
    d = delivery(ingress, completion_wait=0.05)
    d._dispatch([record(0, b"a")])
    await settle()
    d._dispatch([record(1, b"a")])
    while len(ingress.sends) < 2:  # a@0 never completes: a@1 is posted after the bound
        await asyncio.sleep(0.01)
    await settle()
    for offset in (2, 3):
        d._dispatch([record(offset, b"a")])
        await settle()
    # Stalled: later sends go on acceptance, no new attach while the first is open, and
    # everything accepted is committed.
    assert ingress.sends == [("a", [0]), ("a", [1]), ("a", [2]), ("a", [3])]
    assert ingress.attached == ["a"]
    assert d._completed_offsets() == {0: 4}
    # Once the stuck invocation completes, the key is paced on completion again: a@4 waits
    # for a@3's invocation.
    ingress.complete("a")
    await settle()
    d._dispatch([record(4, b"a")])
    await settle()
    assert ingress.sends[-1] == ("a", [3]) and ingress.attached == ["a", "a"]
    ingress.complete("a")
    await settle()
    assert ingress.sends[-1] == ("a", [4])
    assert d._pacer is not None
    await d._abandon()
    await d._pacer.close()


async def test_completion_wait_zero_paces_by_acceptance_only() -> None:
    ingress = _Ingress()
    d = delivery(ingress, completion_wait=0)
    for offset in range(3):
        d._dispatch([record(offset, b"a")])
        await settle()
    assert ingress.sends == [("a", [0]), ("a", [1]), ("a", [2])] and not ingress.attached


async def test_no_more_attaches_than_connections_open_at_once() -> None:
    ingress = _Ingress()
    d = delivery(ingress)
    assert d._pacer is not None
    d._pacer.max_attaches = 2
    d._dispatch([record(0, b"a"), record(1, b"b"), record(2, b"c")])
    await settle()
    d._dispatch([record(3, b"a"), record(4, b"b"), record(5, b"c")])
    await settle()
    # a and b wait for their invocations; c, finding both attaches taken, goes on acceptance.
    assert sorted(ingress.attached) == ["a", "b"]
    assert sorted(ingress.sends) == [("a", [0]), ("b", [1]), ("c", [2]), ("c", [5])]
    ingress.complete("a")
    ingress.complete("b")
    await settle()
    assert len(ingress.sends) == 6
    await d._abandon()


async def test_with_one_unfinished_a_keys_next_send_goes_out_on_acceptance() -> None:
    ingress = _Ingress()
    d = delivery(ingress, unfinished_per_key=1)
    d._dispatch([record(0, b"a")])
    await settle()
    d._dispatch([record(1, b"a")])
    await settle()
    # a@0 has not completed, yet a@1 is posted: Restate queues it behind a@0 (one unfinished).
    assert ingress.sends == [("a", [0]), ("a", [1])] and not ingress.attached
    for offset in (2, 3):
        d._dispatch([record(offset, b"a")])
        await settle()
    # Two unfinished: a@2 and a@3 wait in one send for a@0's invocation (not a@1's).
    assert ingress.sends == [("a", [0]), ("a", [1])]
    assert ingress.attached_ids == [idempotency_key("clicks", "a", [record(0, b"a")])]
    assert d._completed_offsets() == {0: 2}
    ingress.complete("a")
    await settle()
    assert ingress.sends == [("a", [0]), ("a", [1]), ("a", [2, 3])]
    assert d._completed_offsets() == {0: 4}
    await d._abandon()


async def test_with_one_unfinished_a_keys_next_send_still_waits_for_acceptance() -> None:
    ingress = _Ingress(hold_acceptance=True)
    d = delivery(ingress, unfinished_per_key=1)
    d._dispatch([record(0, b"a"), record(1, b"b")])
    await settle()
    d._dispatch([record(2, b"a")])
    await settle()
    # Per-key FIFO: a@2 is not posted before Restate accepted a@0.
    assert sorted(ingress.sends) == [("a", [0]), ("b", [1])]
    assert d._completed_offsets() == {}
    ingress.accept_all()
    await settle()
    assert sorted(ingress.sends) == [("a", [0]), ("a", [2]), ("b", [1])]
    assert d._completed_offsets() == {0: 2}
    ingress.accept_all()
    await settle()
    assert d._completed_offsets() == {0: 3}
    await d._abandon()


async def test_a_batched_binding_posts_up_to_32_sends_at_once() -> None:
    ingress = _Ingress(hold_acceptance=True)
    d = delivery(ingress)
    d._dispatch([record(offset, f"k{offset}".encode()) for offset in range(40)])
    await settle()
    # One send per key, each waiting for its acceptance: 32 in flight, the rest wait for a slot.
    assert len(ingress.sends) == 32
    ingress.accept_all()
    await settle()
    assert len(ingress.sends) == 40
    ingress.accept_all()
    await settle()
    assert d._completed_offsets() == {0: 40}

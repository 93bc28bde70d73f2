"""A batched binding's sends of one key wait for the previous invocation to complete (a call
answered at completion, or an attach after a one-way send), so records arriving meanwhile
join one send instead of each cut making its own; commits follow acceptance (a call's answer,
or a one-way send asking it), and a key whose invocation does not complete is paced by
acceptance again after a bounded wait, without holding other keys.
Counted in sends, calls and attaches, not timed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from connectors.group_consumer import PolledRecord
from restate_stream.batch import BatchDelivery
from restate_stream.batch.ingress_client import Answer
from restate_stream.batch.sends import idempotency_key
from restate_stream.batch.timings import SendStages
from restate_stream.batch.wire import decode_batch
from restate_stream.bindings import Binding
from tests.unit.test_batch import BATCHED, parse


def binding() -> Binding:
    (b,) = parse(BATCHED).bindings
    return b


def call_slots(d: BatchDelivery, slots: int) -> None:
    assert d._pacer is not None
    d._pacer._call_slots = asyncio.Semaphore(slots)


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
    """Restate's ingress as the delivery sees it. A call (`POST Clicks/{key}/on_clicks`) is
    answered once the test completes the invocation (200, or `status`); a one-way send
    (`.../send`) is accepted at once (202), or with `hold_acceptance` when the test accepts
    it; an attach (aiohttp's get) is held until the test completes the invocation. `sends`:
    each new invocation's (object key, offsets), `calls` the object keys of those posted as
    calls, `confirmed` those whose acceptance a one-way send with a called invocation's
    idempotency key asked, `attached` each attach's object key, `attached_ids` its
    idempotency key."""

    def __init__(self, *, hold_acceptance: bool = False) -> None:
        self.sends: list[tuple[str, list[int]]] = []
        self.calls: list[str] = []
        self.confirmed: list[str] = []
        self.attached: list[str] = []
        self.attached_ids: list[str] = []
        self.hold_acceptance = hold_acceptance
        self._invocations: set[str] = set()  # idempotency keys seen
        self._running: dict[str, list[asyncio.Future[int]]] = {}
        self._posted: list[asyncio.Future[None]] = []

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        one_way = path.endswith("/send")
        key = path.split("/")[-3 if one_way else -2]
        idempotency = headers["idempotency-key"]
        if idempotency in self._invocations:
            self.confirmed.append(key)
            return Answer(200, b"")
        self._invocations.add(idempotency)
        self.sends.append((key, [r.offset for r in decode_batch(body)]))
        if not one_way:
            self.calls.append(key)
            status = await self._run(key)
            return Answer(status, b"null")
        if self.hold_acceptance:
            accepted = asyncio.get_running_loop().create_future()
            self._posted.append(accepted)
            await accepted
        return Answer(202, b"")

    def _run(self, key: str) -> asyncio.Future[int]:
        future = asyncio.get_running_loop().create_future()
        self._running.setdefault(key, []).append(future)
        return future

    def accept_all(self) -> None:
        for future in self._posted:
            future.set_result(None)
        self._posted.clear()

    def get(self, url: str) -> _Held:
        *_, key, _, idempotency, _ = url.split("/")  # .../Clicks/{key}/on_clicks/{id}/attach
        self.attached.append(key)
        self.attached_ids.append(idempotency)
        return _Held(self._run(key))

    def complete(self, key: str, status: int = 200) -> None:
        for future in self._running.pop(key, []):
            future.set_result(status)


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
    # Paced by acceptance alone, each cut was a send of its own (4 invocations); here a@1..3
    # wait in one send for a@0's call to answer (no attach: the call is answered at completion).
    assert ingress.sends == [("a", [0])]
    assert ingress.calls == ["a"] and ingress.attached == []
    assert d._completed_offsets() == {}  # a call is known accepted once it answered
    ingress.complete("a")
    await settle()
    assert ingress.sends == [("a", [0]), ("a", [1, 2, 3])]
    assert d._completed_offsets() == {0: 1}
    ingress.complete("a")
    await settle()
    assert d._completed_offsets() == {0: 4}
    assert ingress.confirmed == [] and d.sends == 2
    await d._abandon()


async def test_a_call_answered_otherwise_is_accepted_by_a_one_way_send() -> None:
    """A call's answer other than 200 (a refusal, or the handler's failure) does not tell
    acceptance: a one-way send with the same idempotency key asks it."""
    ingress = _Ingress()
    d = delivery(ingress)
    d._dispatch([record(0, b"a")])
    await settle()
    ingress.complete("a", status=500)
    await settle()
    assert ingress.sends == [("a", [0])] and ingress.confirmed == ["a"]
    assert d._completed_offsets() == {0: 1}
    await d._abandon()


async def test_a_full_send_does_not_wait_for_the_previous_invocation() -> None:
    """The wait is for records to join the send: a send of max_records (BATCHED: 500) can
    take none, so it goes one-way, on acceptance, and the next full one does not wait for its
    invocation; a send that is not full then waits for it, through an attach."""
    ingress = _Ingress()
    d = delivery(ingress)
    d._dispatch([record(o, b"a") for o in range(500)])  # a full send's worth
    await settle()
    d._dispatch([record(o, b"a") for o in range(500, 1000)])
    await settle()
    assert [(key, len(offsets)) for key, offsets in ingress.sends] == [("a", 500), ("a", 500)]
    assert ingress.calls == [] and ingress.attached == []  # the first is still running
    assert d._completed_offsets() == {0: 1000}
    d._dispatch([record(1000, b"a")])
    await settle()
    assert len(ingress.sends) == 2
    assert ingress.attached == ["a"]  # a@1000 waits for the second full send's invocation
    ingress.complete("a")
    await settle()
    assert ingress.sends[-1] == ("a", [1000]) and ingress.calls == ["a"]
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
    assert d._completed_offsets() == {}  # a@0 has not answered: the first cut waits for it
    ingress.complete("a")
    await settle()
    assert d._completed_offsets() == {0: 2}  # b@3 still runs, a@2 was just posted
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
    # a@0's acceptance was asked by a one-way send; its call stays open.
    assert ingress.confirmed == ["a"]
    for offset in (2, 3):
        d._dispatch([record(offset, b"a")])
        await settle()
    # Stalled: later sends go one-way, on acceptance, with no attach while the call is open,
    # and everything accepted is committed.
    assert ingress.sends == [("a", [0]), ("a", [1]), ("a", [2]), ("a", [3])]
    assert ingress.calls == ["a"] and ingress.attached == []
    assert d._completed_offsets() == {0: 4}
    # Once the stuck invocation completes, the key is paced on completion again: a@4 waits
    # for a@3's invocation (an attach: a@3 went one-way), then goes as a call.
    ingress.complete("a")
    await settle()
    d._dispatch([record(4, b"a")])
    await settle()
    assert ingress.sends[-1] == ("a", [3]) and ingress.attached == ["a"]
    ingress.complete("a")
    await settle()
    assert ingress.sends[-1] == ("a", [4]) and ingress.calls == ["a", "a"]
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


async def test_no_more_calls_than_their_connections_open_at_once() -> None:
    ingress = _Ingress()
    d = delivery(ingress)
    call_slots(d, 2)
    d._dispatch([record(0, b"a"), record(1, b"b"), record(2, b"c")])
    await settle()
    # a and b are called; c, finding both calls' connections taken, goes one-way.
    assert sorted(ingress.calls) == ["a", "b"]
    assert sorted(ingress.sends) == [("a", [0]), ("b", [1]), ("c", [2])]
    d._dispatch([record(3, b"a"), record(4, b"b"), record(5, b"c")])
    await settle()
    assert ingress.attached == ["c"]  # c@5 waits for c@2's invocation
    ingress.complete("a")
    ingress.complete("b")
    ingress.complete("c")
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


async def test_a_batched_binding_posts_up_to_32_one_way_sends_at_once() -> None:
    ingress = _Ingress(hold_acceptance=True)
    d = delivery(ingress)
    call_slots(d, 0)  # every call's connection taken: all go one-way
    d._dispatch([record(offset, f"k{offset}".encode()) for offset in range(40)])
    await settle()
    # One send per key, each waiting for its acceptance: 32 in flight, the rest wait for a slot.
    assert len(ingress.sends) == 32 and ingress.calls == []
    ingress.accept_all()
    await settle()
    assert len(ingress.sends) == 40
    ingress.accept_all()
    await settle()
    assert d._completed_offsets() == {0: 40}


class _CaughtUp:
    async def backlog(self) -> int:
        return 0


async def test_while_catching_up_sends_go_one_way_at_acceptance() -> None:
    """After a full cut (a backlog being read), a send is not a call: its records would stay
    in the window until its invocation completed, holding the next reads back. Nor does the
    key's next send wait for that completion: the hold gathers its records there."""
    ingress = _Ingress()
    d = delivery(ingress)
    await d._hold_or_release(_CaughtUp(), 500)  # type: ignore[arg-type]
    d._dispatch([record(0, b"a")])
    await settle()
    assert ingress.sends == [("a", [0])] and ingress.calls == []
    assert d._completed_offsets() == {0: 1}  # accepted, though still running
    d._dispatch([record(1, b"a")])
    await settle()
    assert ingress.sends == [("a", [0]), ("a", [1])]  # a@0 still running
    assert ingress.attached == []
    await d._hold_or_release(_CaughtUp(), 1)  # streaming again: paced on completion, calls
    d._dispatch([record(2, b"a")])
    await settle()
    assert ingress.attached == ["a"] and ingress.calls == []  # waits for a@1
    ingress.complete("a")
    await settle()
    assert ingress.calls == ["a"] and d._completed_offsets() == {0: 2}
    await d._abandon()


async def test_with_a_quarter_of_the_window_in_flight_sends_go_one_way() -> None:
    ingress = _Ingress()
    d = delivery(ingress, max_records_in_flight=8)
    d._dispatch([record(0, b"a")])  # 1 of 8 in flight: a call
    await settle()
    d._dispatch([record(1, b"b"), record(2, b"c")])  # 3 of 8 in flight
    await settle()
    assert ingress.calls == ["a"]
    assert sorted(ingress.sends) == [("a", [0]), ("b", [1]), ("c", [2])]
    await d._abandon()


async def test_without_calls_paced_sends_go_one_way_and_attach() -> None:
    ingress = _Ingress()
    d = delivery(ingress, calls=False)
    d._dispatch([record(0, b"a")])
    await settle()
    d._dispatch([record(1, b"a")])
    await settle()
    assert ingress.calls == [] and ingress.attached == ["a"]
    assert d._completed_offsets() == {0: 1}
    await d._abandon()


async def test_a_stalled_call_keeps_its_connection_slot_until_it_answers() -> None:
    ingress = _Ingress()
    d = delivery(ingress, completion_wait=0.05)
    call_slots(d, 1)
    d._dispatch([record(0, b"a")])
    await settle()
    while not ingress.confirmed:  # a@0's call outlived the bound: acceptance asked one-way
        await asyncio.sleep(0.01)
    d._dispatch([record(1, b"b")])
    await settle()
    assert ingress.calls == ["a"]  # b went one-way: a's stalled call still holds the slot
    ingress.complete("a")
    await settle()
    d._dispatch([record(2, b"c")])
    await settle()
    assert ingress.calls == ["a", "c"]
    assert d._pacer is not None
    await d._abandon()
    await d._pacer.close()


class _Stages:
    """A delivery observer keeping each accepted send's stages."""

    def __init__(self) -> None:
        self.accepted_stages: list[SendStages] = []

    def polled(self, records: list[PolledRecord], at: float) -> None:
        pass

    def cut(self, records: list[PolledRecord], at: float) -> None:
        pass

    def accepted(self, key: str, records: list[PolledRecord], stages: SendStages) -> None:
        self.accepted_stages.append(stages)


async def test_an_observer_is_told_which_sends_were_calls() -> None:
    ingress, observer = _Ingress(), _Stages()
    d = delivery(ingress, observer=observer)
    d._dispatch([record(o, b"a") for o in range(500)])  # full: one-way
    await settle()
    d._dispatch([record(500, b"a")])
    await settle()
    ingress.complete("a")  # the full send's invocation (attached)
    await settle()
    ingress.complete("a")  # a@500's call
    await settle()
    assert [s.called for s in observer.accepted_stages] == [False, True]
    await d._abandon()

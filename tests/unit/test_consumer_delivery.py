"""`delivery: consumer` for per-record bindings, without engines: the field's validation, the
per-record send (idempotency key, body, headers, object key), per-key FIFO scheduling and the
offsets committed, the plan (no subscription) and what the bound handler reads back."""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import restate

from connectors.consume import ConsumedRecord
from connectors.group_consumer import PolledRecord
from restate_stream.batch import BatchDelivery, BatchRunner, record_idempotency_key, sends
from restate_stream.batch.delivery import DeliveryFailed
from restate_stream.batch.ingress_client import Answer
from restate_stream.batch.sends import RecordShape
from restate_stream.bindings import Binding, BindingsError, load_bindings, parse_bindings
from restate_stream.bindings.edit import set_paused
from restate_stream.control.admin import Subscription
from restate_stream.control.plan import (
    CreateSubscription,
    DeleteSubscription,
    LiveState,
    compute_plan,
)
from restate_stream.control.status import _invocations_of
from restate_stream.dlq import by_source_record, parse_entry, redrive_request
from restate_stream.runtime._sdk import handler_function
from restate_stream.runtime.bound import (
    REDRIVE_WINDOW,
    RecordBoundHandler,
    bind,
    with_high_water,
)
from restate_stream.runtime.dead_letter import DEAD_LETTER_TYPE, DeadLetter
from restate_stream.runtime.event import (
    RECORD_HEADERS_HEADER,
    KafkaCoordinates,
    KafkaEvent,
    encode_record_headers,
    object_key_for,
)
from restate_stream.runtime.formats import cloudevent
from restate_stream.testing import MemoryContext, MemoryPublisher, invoke, wait_until

FILE = Path("conf/bindings.yaml")

CONSUMER = """\
kafka:
  clusters:
    local: {bootstrap.servers: "127.0.0.1:9092"}
bindings:
  - name: clicks
    topic: clicks
    handler: Clicks/on_click
    delivery: consumer
"""


def parse(text: str) -> Any:
    return parse_bindings(textwrap.dedent(text), FILE, {})


def record(
    partition: int,
    offset: int,
    key: bytes | None = b"k",
    value: bytes | None = b"{}",
    headers: tuple[tuple[str, bytes | None], ...] = (),
) -> PolledRecord:
    return PolledRecord("clicks", partition, offset, 1_700_000_000_123, key, value, headers)


# --- the field ----------------------------------------------------------------------------


def test_delivery_is_read_and_defaults_to_subscription() -> None:
    (binding,) = parse(CONSUMER).bindings
    assert binding.delivered_by == "consumer" and binding.own_consumer
    (default,) = parse(CONSUMER.replace("    delivery: consumer\n", "")).bindings
    assert default.delivered_by == "subscription" and not default.own_consumer
    batched = CONSUMER.replace("    delivery: consumer\n", "    batch: {max_records: 10}\n")
    assert parse(batched).bindings[0].delivered_by == "consumer"


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        (
            "    delivery: kafka\n",
            '8:15: bindings[0].delivery: expected "consumer" or "subscription"; got \'kafka\'',
        ),
        (
            "    batch: {max_records: 10}\n    delivery: subscription\n",
            "9:15: bindings[0].delivery: a batched binding is delivered by restate-stream's own "
            "consumer; drop delivery: subscription or the batch section",
        ),
        (
            "    delivery: consumer\n    options: {fetch.max.bytes: '1'}\n",
            "9:14: bindings[0].options: a binding with delivery: consumer has no Restate "
            "subscription, so it takes no subscription options (group.id aside)",
        ),
        (
            "    idempotency_retention: 10m\n",
            "8:28: bindings[0].idempotency_retention: idempotency_retention applies only to a "
            "per-record binding with delivery: consumer",
        ),
        (
            "    batch: {max_records: 10}\n    idempotency_retention: 10m\n",
            "9:28: bindings[0].idempotency_retention: idempotency_retention applies only to a "
            "per-record binding with delivery: consumer",
        ),
        (
            "    delivery: consumer\n    idempotency_retention: 30s\n",
            "9:28: bindings[0].idempotency_retention: expected a duration with a unit, at least "
            "1m, like 10m or 24h; got '30s'",
        ),
    ],
)
def test_delivery_problems_name_the_place(replacement: str, expected: str) -> None:
    with pytest.raises(BindingsError) as raised:
        parse(CONSUMER.replace("    delivery: consumer\n", replacement))
    assert f"conf/bindings.yaml:{expected}" in str(raised.value)


def test_idempotency_retention_is_read_for_consumer_delivery() -> None:
    (binding,) = parse(CONSUMER + "    idempotency_retention: 10m\n").bindings
    assert binding.idempotency_retention == timedelta(minutes=10)
    assert parse(CONSUMER).bindings[0].idempotency_retention is None


def test_plan_creates_no_subscription_and_removes_the_one_it_replaces() -> None:
    spec = parse(CONSUMER)
    group = spec.bindings[0].consumer_group
    empty = LiveState({}, [], [], {}, set())
    plan = compute_plan(spec, empty)
    assert not [c for c in plan.changes if isinstance(c, CreateSubscription)]
    assert "binding clicks: delivery: consumer, delivered by the worker" in plan.unchanged
    old = Subscription(
        "sub_1", "kafka://local/clicks", "service://Clicks/on_click", {"group.id": group}
    )
    changes = compute_plan(spec, LiveState({}, [old], [], {}, {"Clicks/on_click"})).changes
    (delete,) = [c for c in changes if isinstance(c, DeleteSubscription)]
    # The group's offsets stay: the consumer starts where the subscription stopped. apply
    # does not wait for the group to empty: the worker's consumer may be in it already.
    assert delete.id == "sub_1" and f"takes over from {group}'s offsets" in delete.reason
    assert delete.wait_group is None
    assert not [c for c in changes if isinstance(c, CreateSubscription)]


def test_status_counts_the_consumers_sends_of_this_group_and_redrives() -> None:
    (binding,) = parse(CONSUMER).bindings
    where = _invocations_of(binding, [])
    assert where is not None
    assert "starts_with(idempotency_key, 'rs-record/restate-stream.clicks/')" in where
    assert "starts_with(idempotency_key, 'redrive/clicks/')" in where
    # Sends to a target keeping a high-water carry no key: the handler's keyless ingress calls.
    assert "OR invoked_by = 'ingress'" in where
    unkeyed = _invocations_of(parse(CONSUMER + "    keyed: false\n").bindings[0], [])
    assert unkeyed is not None and "invoked_by" not in unkeyed
    # `_` and `%` in names are plain characters, not LIKE wildcards.
    (other,) = parse(CONSUMER.replace("name: clicks", "name: click_s")).bindings
    assert "LIKE" not in (_invocations_of(other, []) or "")


# --- the per-record send ------------------------------------------------------------------


def test_record_idempotency_key_names_group_topic_partition_offset() -> None:
    assert record_idempotency_key("g", "t", 3, 42) == "rs-record/g/t/3/42"
    assert record_idempotency_key("g", "t", 3, 42) != record_idempotency_key("g", "t", 4, 42)
    assert record_idempotency_key("g", "t", 3, 42) != record_idempotency_key("h", "t", 3, 42)


def test_a_send_is_the_record_as_a_subscription_invokes_its_handler() -> None:
    (binding,) = parse(CONSUMER).bindings
    shape = RecordShape(binding)
    r = record(2, 7, b"user-1", b'{"n": 1}', (("tag", b"\xff"), ("empty", None)))
    request = shape.request(shape.object_key(r), [r])
    assert request.path == "Clicks/user-1/on_click/send"
    assert request.body == b'{"n": 1}'
    coordinates = KafkaCoordinates.from_headers(request.headers)
    assert coordinates == KafkaCoordinates("clicks", 2, 7, coordinates.timestamp, b"user-1", None)
    assert coordinates.timestamp is not None
    assert request.headers["kafka.timestamp"] == "1700000000123"
    assert request.headers["idempotency-key"] == "rs-record/restate-stream.clicks/clicks/2/7"
    # A tombstone is an empty body, as Restate's subscription sends it.
    tombstone = record(2, 8, b"user-1", None)
    assert shape.request("user-1", [tombstone]).body == b""
    # A key that is not UTF-8 gets its own object instead of blocking the partition.
    binary = record(0, 1, b"\xff\xfe")
    key = shape.object_key(binary)
    assert key == object_key_for(b"\xff\xfe") and key.startswith("b64:")
    assert shape.request(key, [binary]).path == f"Clicks/{quote(key, safe='')}/on_click/send"
    unkeyed = RecordShape(parse(CONSUMER + "    keyed: false\n").bindings[0])
    assert unkeyed.request("user-1", [r]).path == "Clicks/on_click/send"


def test_a_keys_sends_share_its_path_and_headers_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built once per key (path, topic, key), not per record: what each record carries is its
    own, and a key sharing another's object (None and b"") keeps its own `kafka.key`."""
    (binding,) = parse(CONSUMER).bindings
    shape = RecordShape(binding)

    def fresh(r: PolledRecord) -> dict[str, str]:
        """What the record's headers are, built from scratch."""
        coordinates = KafkaCoordinates(r.topic, r.partition, r.offset, None, r.key, None)
        return {
            "content-type": "application/octet-stream",
            **coordinates.to_headers(),
            "idempotency-key": record_idempotency_key(
                binding.consumer_group, r.topic, r.partition, r.offset
            ),
            "kafka.timestamp": str(r.timestamp_ms),
        }

    records = [
        record(0, 1, b"a"),
        record(3, 9, b"a", headers=(("tag", b"x"),)),
        record(0, 2, b"a"),
        record(0, 3, None),
        record(0, 4, b""),
        record(1, 5, None),
    ]
    for r in records:
        request = shape.request(shape.object_key(r), [r])
        expected = fresh(r)
        if r.headers:
            expected[RECORD_HEADERS_HEADER] = encode_record_headers(r.headers)
        assert request.headers == expected
        assert list(request.headers) == list(expected), "header order as before"
    assert shape.request("", [records[3]]).headers.get("kafka.key") is None
    assert shape.request("", [records[4]]).headers["kafka.key"] == ""
    # Bounded: past MAX_TEMPLATES keys the kept ones are dropped, not grown without end.
    monkeypatch.setattr(sends, "MAX_TEMPLATES", 3)
    for i in range(10):
        r = record(0, i, f"k{i}".encode())
        assert shape.request(f"k{i}", [r]).path == f"Clicks/k{i}/on_click/send"
        assert len(shape._templates) <= 3


def test_a_send_to_a_target_keeping_a_high_water_carries_no_idempotency_key() -> None:
    """There a re-sent record is dropped at the high-water; Restate need keep no entry for it."""
    (binding,) = parse(CONSUMER).bindings
    r = record(2, 7, b"user-1", b'{"n": 1}')
    lean = RecordShape(dataclasses.replace(binding, keeps_high_water=True)).request("user-1", [r])
    full = RecordShape(binding).request("user-1", [r])
    assert "idempotency-key" not in lean.headers
    assert {**lean.headers, "idempotency-key": full.headers["idempotency-key"]} == full.headers
    assert (lean.path, lean.body) == (full.path, full.body)


clicks = restate.VirtualObject("Clicks")


@clicks.handler()
async def on_click(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    ctx.set("seen", {"key": event.key, "headers": [[n, v and v.hex()] for n, v in event.headers]})


@clicks.handler(kind="shared")
async def peek(ctx: restate.ObjectSharedContext, event: KafkaEvent[dict[str, Any]]) -> None:
    pass


click_log = restate.Service("ClickLog")


@click_log.handler()
async def log_click(ctx: restate.Context, event: KafkaEvent[dict[str, Any]]) -> None:
    pass


def test_only_exclusive_object_handlers_of_per_record_bindings_keep_a_high_water() -> None:
    """What the worker tells its consumer: these targets' sends go without idempotency keys;
    the bound handler drops re-sent records by the same answer."""
    text = CONSUMER + (
        "  - {name: peeks, topic: clicks, handler: Clicks/peek, delivery: consumer}\n"
        "  - {name: logged, topic: clicks, handler: ClickLog/log_click, keyed: false,"
        " delivery: consumer}\n"
        "  - {name: batched, topic: batched, handler: Clicks/on_click, batch: {max_records: 5}}\n"
    )
    spec = with_high_water([clicks, click_log], parse(text))
    assert [b.name for b in spec.bindings if b.keeps_high_water] == ["clicks"]
    bind([clicks, click_log], parse(CONSUMER), {"local": MemoryPublisher()})  # type: ignore[dict-item]
    wrapper = handler_function(clicks.handlers["on_click"])
    assert isinstance(wrapper, RecordBoundHandler) and wrapper.keeps_high_water
    runner = BatchRunner(spec)
    assert isinstance(runner.deliveries["clicks"].shape, RecordShape)
    assert runner.deliveries["clicks"].shape.keeps_high_water
    assert not any(
        getattr(runner.deliveries[n].shape, "keeps_high_water", False) for n in ("peeks", "logged")
    )


async def test_the_bound_handler_reads_the_record_headers_and_the_b64_key_back() -> None:
    spec = parse(CONSUMER)
    bind([clicks], spec, {"local": MemoryPublisher()})  # type: ignore[dict-item]
    shape = RecordShape(spec.bindings[0])
    r = record(0, 1, b"\xff\xfe", b'{"n": 1}', (("tag", b"\xff"), ("empty", None)))
    request = shape.request(shape.object_key(r), [r])
    ctx = MemoryContext(shape.object_key(r), headers=request.headers)
    await invoke(clicks, "on_click", ctx, request.body)
    assert ctx.state["seen"] == {
        "key": object_key_for(b"\xff\xfe"),
        "headers": [["tag", "ff"], ["empty", None]],
    }
    assert RECORD_HEADERS_HEADER in request.headers


def test_bind_gives_the_handler_the_bindings_idempotency_retention() -> None:
    """Restate keeps each consumer-delivered record's idempotency entry for the handler's
    retention: the binding's, else the dlq redrive window."""
    bind(
        [clicks], parse(CONSUMER + "    idempotency_retention: 2h\n"), {"local": MemoryPublisher()}
    )  # type: ignore[dict-item]
    assert clicks.handlers["on_click"].idempotency_retention == timedelta(hours=2)
    bind([clicks], parse(CONSUMER), {"local": MemoryPublisher()})  # type: ignore[dict-item]
    assert clicks.handlers["on_click"].idempotency_retention == REDRIVE_WINDOW


# --- per-key FIFO and the offsets committed -----------------------------------------------


class _Ingress:
    """Holds every send until the test accepts it; records what was posted, in order."""

    def __init__(self) -> None:
        self.posted: list[str] = []  # idempotency keys
        self._answers: dict[str, asyncio.Future[int]] = {}

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        return Answer(await self.waiting(headers["idempotency-key"]), b"")

    def answer(self, partition: int, offset: int, status: int = 202) -> None:
        key = record_idempotency_key("restate-stream.clicks", "clicks", partition, offset)
        self._answers.pop(key).set_result(status)

    def fail(self, partition: int, offset: int, error: Exception) -> None:
        """The send raises (a bug, not a refusal): not retried, never counted as accepted."""
        key = record_idempotency_key("restate-stream.clicks", "clicks", partition, offset)
        self._answers.pop(key).set_exception(error)

    def waiting(self, key: str) -> asyncio.Future[int]:
        self.posted.append(key)
        future = self._answers[key] = asyncio.get_running_loop().create_future()
        return future


def _held(binding: Binding | None = None, **options: Any) -> tuple[BatchDelivery, _Ingress]:
    """A delivery of `binding` (the clicks binding) whose sends an `_Ingress` holds."""
    if binding is None:
        (binding,) = parse(CONSUMER).bindings
    delivery = BatchDelivery(binding, {}, "http://ingress", **options)
    ingress = _Ingress()
    delivery._client = ingress  # type: ignore[assignment]
    return delivery, ingress


def _offsets(ingress: _Ingress) -> list[str]:
    return [k.removeprefix("rs-record/restate-stream.clicks/clicks/") for k in ingress.posted]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_keys_next_record_is_posted_after_the_previous_was_accepted() -> None:
    delivery, ingress = _held()
    # Two cuts: a@0/0, b@0/1, a@0/2 | a@1/0, c@1/1
    delivery._dispatch([record(0, 0, b"a"), record(0, 1, b"b"), record(0, 2, b"a")])
    delivery._dispatch([record(1, 0, b"a"), record(1, 1, b"c")])
    await _settle()
    # Other keys do not wait for a; a's second and third records wait for its first.
    assert sorted(_offsets(ingress)) == ["0/0", "0/1", "1/1"]
    assert delivery._completed_offsets() == {}
    ingress.answer(0, 1)
    ingress.answer(1, 1)
    await _settle()
    # The first cut still holds a@0/0, not accepted: nothing is committed.
    assert delivery._completed_offsets() == {}
    ingress.answer(0, 0)
    await _settle()
    assert _offsets(ingress)[-1] == "0/2"  # only now
    assert delivery._completed_offsets() == {}  # a@0/2 is in the first cut too
    ingress.answer(0, 2, status=200)  # a deduplicated resend is accepted as well
    await _settle()
    assert _offsets(ingress)[-1] == "1/0"
    assert delivery._completed_offsets() == {0: 3}
    ingress.answer(1, 0)
    await _settle()
    assert delivery._completed_offsets() == {1: 2}
    assert delivery.delivered == 5


async def test_a_send_not_accepted_is_retried_and_holds_back_the_key_and_the_commit() -> None:
    delivery, ingress = _held()
    delivery._dispatch([record(0, 0, b"a"), record(0, 1, b"a")])
    await _settle()
    ingress.answer(0, 0, status=503)
    await asyncio.sleep(0.1)  # the retry's backoff (50 ms)
    await _settle()
    assert _offsets(ingress) == ["0/0", "0/0"]  # the same send again, same idempotency key
    assert delivery._completed_offsets() == {}
    ingress.answer(0, 0)
    await _settle()
    ingress.answer(0, 1)
    await _settle()
    assert _offsets(ingress) == ["0/0", "0/0", "0/1"]
    assert delivery._completed_offsets() == {0: 2}


async def test_a_send_that_raises_commits_nothing_past_it_and_stops_the_delivery() -> None:
    delivery, ingress = _held()
    delivery._dispatch([record(0, 0, b"a"), record(0, 1, b"b")])
    delivery._dispatch([record(0, 2, b"a")])
    await _settle()
    ingress.fail(0, 0, RuntimeError("boom"))
    ingress.answer(0, 1)
    await _settle()
    # The first cut is not committed though nothing of it is in flight any more, and a's
    # next record is not posted past the hole.
    assert sorted(_offsets(ingress)) == ["0/0", "0/1"]
    assert delivery._completed_offsets() == {}
    with pytest.raises(DeliveryFailed, match=r"binding clicks: .*RuntimeError: boom"):
        delivery._raise_if_a_send_failed()
    await delivery._abandon()


async def test_records_in_flight_cost_no_task_each_and_keys_take_turns() -> None:
    """A record waiting for its key's previous one is an entry in its key's lane, not a task
    (a task per record, each awaiting the previous, was most of the consumer's CPU); the
    fixed senders post every ready key's head record, keys in turn."""
    delivery, ingress = _held(max_concurrent_sends=2)
    tasks_before = len(asyncio.all_tasks())
    delivery._dispatch([record(0, i, f"k{i % 3}".encode()) for i in range(300)])
    await _settle()
    assert len(asyncio.all_tasks()) - tasks_before == 2  # the two senders, whatever the records
    assert sorted(_offsets(ingress)) == ["0/0", "0/1"]  # k0 and k1; k2 waits for a sender
    ingress.answer(0, 0)
    await _settle()
    assert _offsets(ingress)[-1] == "0/2"  # k2's turn comes before k0's next record
    ingress.answer(0, 1)
    await _settle()
    assert _offsets(ingress)[-1] == "0/3"  # then k0's second
    await delivery._abandon()
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_revoke_drains_the_lanes_and_commits_what_was_accepted() -> None:
    delivery, ingress = _held()
    delivery._dispatch([record(0, 0, b"a"), record(0, 1, b"a"), record(0, 2, b"b")])
    delivery._dispatch([record(0, 3, b"a")])
    drain = asyncio.create_task(delivery._drain(timeout=5.0))
    for offset in (0, 2, 1, 3):
        await _settle()
        assert not drain.done()
        ingress.answer(0, offset)
    assert await drain == {0: 4}
    # Drained with a send left unanswered: what was accepted before it is committed.
    delivery._dispatch([record(0, 4, b"a"), record(0, 5, b"b")])
    delivery._dispatch([record(0, 6, b"a")])
    await _settle()
    ingress.answer(0, 5)
    assert await delivery._drain(timeout=0.1) == {}  # a@4 holds the first of these batches
    assert delivery._lanes == {} and delivery._senders == []


async def test_keyless_records_of_an_unkeyed_binding_are_not_posted_one_at_a_time() -> None:
    (binding,) = parse(
        CONSUMER.replace("Clicks/on_click", "Clicks/on_click\n    keyed: false")
    ).bindings
    assert not binding.keyed
    delivery, ingress = _held(binding)
    delivery._dispatch(
        [record(0, 0, None), record(0, 1, None), record(0, 2, b"k"), record(0, 3, b"k")]
    )
    await _settle()
    # Both keyless records are in flight at once; a key's records still go one by one.
    assert sorted(_offsets(ingress)) == ["0/0", "0/1", "0/2"]
    for offset in (0, 1, 2):
        ingress.answer(0, offset)
    await _settle()
    ingress.answer(0, 3)
    await _settle()
    assert delivery._completed_offsets() == {0: 4}


# --- pause and resume in place ------------------------------------------------------------


async def test_the_worker_runs_the_consumer_and_follows_pause_resume_and_a_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []

    async def run(self: BatchDelivery, stop: asyncio.Event) -> None:
        runs.append(f"start {self.binding.name}")
        await stop.wait()
        runs.append(f"stop {self.binding.name}")

    monkeypatch.setattr(BatchDelivery, "run", run)
    path = tmp_path / "bindings.yaml"
    path.write_text(CONSUMER)
    runner = BatchRunner(load_bindings(path), watch_interval=0.01)
    assert set(runner.deliveries) == {"clicks"}

    async def running() -> set[str]:
        return runner.running

    await runner.start()
    try:
        await wait_until(running, lambda r: r == {"clicks"})
        assert set_paused(path, "clicks", True)
        await wait_until(running, lambda r: not r)
        assert set_paused(path, "clicks", False)
        await wait_until(running, lambda r: r == {"clicks"})
        # Switched to a subscription: the consumer leaves the group apply gives Restate.
        path.write_text(CONSUMER.replace("delivery: consumer", "delivery: subscription"))
        await wait_until(running, lambda r: not r)
    finally:
        await runner.stop()
    assert runs == ["start clicks", "stop clicks"] * 2
    subscribed = tmp_path / "subscribed.yaml"
    subscribed.write_text(CONSUMER.replace("    delivery: consumer\n", ""))
    # No consumer to run yet: the runner only follows the file (`migrate` may move one there).
    idle = BatchRunner(load_bindings(subscribed), watch_interval=0.01)
    await idle.start()
    try:
        await asyncio.sleep(0.05)
        assert idle.deliveries == {} and idle.running == set()
    finally:
        await idle.stop()


async def test_a_binding_moved_onto_the_consumer_keeps_what_its_target_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reloaded file knows nothing of the app: a binding `migrate` moves onto the running
    consumer keeps the bound target's high-water fact (its sends carry no idempotency key)."""

    async def run(self: BatchDelivery, stop: asyncio.Event) -> None:
        await stop.wait()

    monkeypatch.setattr(BatchDelivery, "run", run)
    path = tmp_path / "bindings.yaml"
    subscribed = CONSUMER.replace("    delivery: consumer\n", "") + (
        "  - {name: logged, topic: clicks, handler: ClickLog/log_click, delivery: consumer}\n"
    )
    path.write_text(subscribed)
    spec = with_high_water([clicks, click_log], load_bindings(path))
    runner = BatchRunner(spec, watch_interval=0.01)
    assert set(runner.deliveries) == {"logged"}

    async def running() -> set[str]:
        return runner.running

    await runner.start()
    try:
        path.write_text(
            subscribed.replace(
                "handler: Clicks/on_click\n", "handler: Clicks/on_click\n    delivery: consumer\n"
            )
        )
        await wait_until(running, lambda r: r == {"clicks", "logged"})
    finally:
        await runner.stop()
    shapes = {name: delivery.shape for name, delivery in runner.deliveries.items()}
    assert isinstance(shapes["clicks"], RecordShape) and shapes["clicks"].keeps_high_water
    assert isinstance(shapes["logged"], RecordShape) and not shapes["logged"].keeps_high_water


# --- dlq redrive --------------------------------------------------------------------------


def test_a_redrive_goes_to_the_object_the_consumer_sent_the_record_to() -> None:
    (binding,) = parse(CONSUMER + "    dead_letter: clicks.dlq\n").bindings
    raw_key = b"\xff\xfe"
    coordinates = KafkaCoordinates("clicks", 0, 9, None, raw_key, None)
    letter = DeadLetter.of("clicks", coordinates, b"{}", "TerminalError", "no", 1)
    value = cloudevent("id", DEAD_LETTER_TYPE, "restate-stream", "now", letter.to_json())
    entry = parse_entry(ConsumedRecord("clicks.dlq", 0, 3, raw_key, value, 1))
    [history] = by_source_record([entry], "clicks").records
    request = redrive_request(binding, history)
    assert request.path == f"Clicks/{quote(object_key_for(raw_key), safe='')}/on_click"
    assert KafkaCoordinates.from_headers(request.headers).key == raw_key

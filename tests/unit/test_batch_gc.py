"""A batch is polled, encoded, decoded and its events built with garbage collection paused
(connectors/gc_pause.py): every object those stretches build stays reachable, so a collection in
them walks them for nothing. The pause never spans an await, and collection is on again
whatever happened."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
import restate
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from connectors.gc_pause import collection_paused
from connectors.group_consumer import GroupConsumer
from restate_stream.batch.wire import WireRecord, decode_batch, encode_batch
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.formats import DecodeError
from restate_stream.testing import MemoryContext, MemoryPublisher, invoke
from tests.unit.test_batch_wire_v2 import spec


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of each garbage collection started while the test runs."""
    started: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(info["generation"])

    assert gc.isenabled()
    gc.callbacks.append(count)
    try:
        yield started
    finally:
        gc.callbacks.remove(count)


def test_a_body_is_encoded_and_decoded_without_a_collection(collections: list[int]) -> None:
    records = [
        WireRecord("t", i % 4, i, 1_700_000_000_000, b"key-%d" % (i % 25), b'{"seq": %d}' % i)
        for i in range(20_000)
    ]
    for json_values in (True, False):  # by column, and record by record
        gc.collect()
        collections.clear()
        body = encode_batch(records, json_values=json_values)
        decoded = decode_batch(body)
        # Unpaused, one every 700 containers: dozens a call. Paused, one may start once each
        # call returned (the count of containers is not all given back as they are freed).
        assert len(collections) <= 2, collections
        assert len(decoded) == 20_000
    assert gc.isenabled()


def test_a_polls_records_are_built_without_a_collection(collections: list[int]) -> None:
    messages = [
        Message(topic="t", partition=0, offset=i, key=b"k", value=b"%d" % i,  # type: ignore[call-arg]
                timestamp=(TIMESTAMP_CREATE_TIME, 1_700_000_000_000))
        for i in range(20_000)
    ]  # fmt: skip
    consumer = GroupConsumer({"bootstrap.servers": "127.0.0.1:9"}, "t", "g")
    consumer._consumer = StandInConsumer(messages)  # type: ignore[assignment]
    gc.collect()
    collections.clear()
    assert len(consumer._poll(20_000, 0)) == 20_000
    assert len(collections) <= 1, collections
    assert gc.isenabled()


class StandInConsumer:
    """consume() returns what it was given, as confluent-kafka's would from a broker."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    def consume(self, max_records: int, timeout: float) -> list[Message]:
        return self.messages


async def test_a_large_batch_is_decoded_without_a_collection_every_few_hundred_records(
    collections: list[int],
) -> None:
    obj = restate.VirtualObject("GcLarge")
    seen: list[int] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
        seen.append(len(events))

    bind([obj], spec("GcLarge", per="partition"), {"local": MemoryPublisher()})
    records = [
        WireRecord("t", 0, i, 1_700_000_000_000, b"key-%d" % (i % 25), b'{"seq": %d}' % i)
        for i in range(20_000)
    ]
    body = encode_batch(records, json_values=True)
    gc.collect()
    collections.clear()
    await invoke(obj, "take", MemoryContext("t/0", invocation_id="inv_1"), body)
    assert seen == [20_000]
    # Unpaused, one every 700 containers: ~6 a record here (run lists, records, values,
    # events), so hundreds; paused, the few that the records kept after each stretch start.
    assert len(collections) <= 10, collections
    assert gc.isenabled()


async def test_collection_is_on_again_after_a_malformed_body() -> None:
    obj = restate.VirtualObject("GcMalformed")

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None: ...

    bind([obj], spec("GcMalformed"), {"local": MemoryPublisher()})
    with pytest.raises(restate.TerminalError):
        await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), b'{"v": 2, "r"')
    assert gc.isenabled()


class WaitingCodec:
    """A codec whose values starting with "wait" need I/O first (as a schema id the
    registry has not been asked for), which decode_now leaves to a thread."""

    def __init__(self) -> None:
        self.collecting_while_waiting: list[bool] = []

    def needs_io(self, data: bytes) -> bool:
        return data.startswith(b"wait")

    def decode(self, data: bytes) -> Any:
        if data.startswith(b"wait"):
            self.collecting_while_waiting.append(gc.isenabled())
        if data == b"bad":
            raise DecodeError("bad value")
        return data.decode()


async def test_records_that_wait_for_io_or_fail_keep_the_batch_in_order_and_collecting() -> None:
    obj = restate.VirtualObject("GcWaiting")
    seen: list[tuple[int, str, str | None]] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[str]]) -> None:
        seen.extend((e.offset, e.value, e.key) for e in events)

    publisher = MemoryPublisher()
    bind([obj], spec("GcWaiting", fmt="string", per="partition"), {"local": publisher})
    codec = WaitingCodec()
    obj.handlers["take"].fn.codec = codec
    values = [b"a", b"wait-1", b"bad", b"b", b"wait-2", b"wait-3", b"c", b"bad"]
    keys = [b"k1", b"k2", b"k1", b"k3", b"k1", b"k2", b"k3", b"k1"]
    body = encode_batch(
        [
            WireRecord("t", 0, i, None, k, v)
            for i, (k, v) in enumerate(zip(keys, values, strict=True))
        ]
    )
    await invoke(obj, "take", MemoryContext("t/0", invocation_id="inv_1"), body)
    assert seen == [
        (0, "a", "k1"),
        (1, "wait-1", "k2"),
        (3, "b", "k3"),
        (4, "wait-2", "k1"),
        (5, "wait-3", "k2"),
        (6, "c", "k3"),
    ]
    assert [json.loads(json.dumps(m.value))["source"]["offset"] for m in publisher.sent] == [2, 7]
    assert codec.collecting_while_waiting == [True, True, True]  # never paused over an await
    assert gc.isenabled()


def test_a_pause_inside_one_or_after_gc_disable_leaves_collection_off() -> None:
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the application's choice stands
    finally:
        gc.enable()
    with collection_paused():
        with collection_paused():
            pass
        assert not gc.isenabled()  # the inner pause did not end the outer one
    assert gc.isenabled()

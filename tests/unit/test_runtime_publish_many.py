"""Publisher.publish_many against a fake producer and a fake Restate context.

The fake context journals run results by position and draws uuids from a seeded random, as
Restate does: a second context over the same journal is a replay (or the run's retry).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import pytest
import restate

from connectors.producer import Delivery, ProduceError, ProducerRecord
from restate_stream.runtime.publisher import Outgoing, Published, Publisher

Outcome = Delivery | ProduceError


class FakeContext:
    """uuid() and run_typed() as Restate gives them: runs already in `journal` are replayed."""

    def __init__(self, journal: list[Any], seed: int = 7) -> None:
        self.journal = journal
        self.random = random.Random(seed)
        self.runs = 0  # run entries reached by this attempt
        self.executed: list[str] = []  # names of runs whose closure ran

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.random.getrandbits(128), version=4)

    async def run_typed(
        self, name: str, action: Callable[[], Awaitable[Any]], options: Any = None
    ) -> Any:
        index, self.runs = self.runs, self.runs + 1
        if index < len(self.journal):
            return self.journal[index]
        self.executed.append(name)
        result = await action()  # an exception here is a failed attempt: nothing journaled
        self.journal.append(json.loads(json.dumps(result)))  # what the serde keeps
        return result


class FakeProducer:
    """Acks each record on partition 0 at the next offset, unless `script` says otherwise."""

    def __init__(self) -> None:
        self.sent: list[list[ProducerRecord]] = []
        self.script: list[Callable[[int, ProducerRecord], ProduceError | None]] = []
        self.offset = 0

    async def send_many(self, records: Sequence[ProducerRecord]) -> list[Outcome]:
        self.sent.append(list(records))
        fail = self.script.pop(0) if self.script else (lambda i, r: None)
        outcomes: list[Outcome] = []
        for i, record in enumerate(records):
            failure = fail(i, record)
            if failure is not None:
                outcomes.append(failure)
            else:
                outcomes.append(Delivery(record.topic, 0, self.offset, None))
                self.offset += 1
        return outcomes


def publisher_with(producer: FakeProducer) -> Publisher:
    publisher = Publisher({"bootstrap.servers": "unused:9092"})
    publisher._producer = lambda: cast(Any, producer)  # type: ignore[method-assign]
    return publisher


def records(n: int, topic: str = "out") -> list[Outgoing]:
    return [Outgoing(topic, f"key-{i % 3}", {"seq": i}) for i in range(n)]


def envelope(record: ProducerRecord) -> dict[str, Any]:
    assert record.value is not None
    loaded: dict[str, Any] = json.loads(record.value)
    return loaded


def expected_ids(n: int, seed: int = 7) -> list[str]:
    ctx = FakeContext([], seed)
    return [str(ctx.uuid()) for _ in range(n)]


async def publish_many(
    publisher: Publisher, ctx: FakeContext, batch: Sequence[Any], **options: Any
) -> list[Published]:
    return await publisher.publish_many(cast(restate.Context, ctx), batch, **options)


async def test_one_run_publishes_every_record_in_order_with_deterministic_ids() -> None:
    producer = FakeProducer()
    ctx = FakeContext([])
    published = await publish_many(publisher_with(producer), ctx, records(5))

    assert ctx.executed == ["publish_many 5 records"], "one durable step for the batch"
    assert len(producer.sent) == 1, "one send_many: all records in flight together"
    (sent,) = producer.sent
    ids = expected_ids(5)
    assert len(set(ids)) == 5
    assert [envelope(r)["id"] for r in sent] == ids, "ids drawn from ctx.uuid(), in list order"
    assert [envelope(r)["data"] for r in sent] == [{"seq": i} for i in range(5)]
    assert [r.key for r in sent] == [f"key-{i % 3}".encode() for i in range(5)]
    assert {envelope(r)["type"] for r in sent} == {"out.published"}
    assert published == [Published(ids[i], "out", 0, i) for i in range(5)]
    assert ctx.journal == [
        [{"topic": "out", "partition": 0, "offset": i, "event_id": ids[i]} for i in range(5)]
    ], "the acks are the run's one journaled result"


async def test_replay_returns_the_journaled_acks_without_producing() -> None:
    producer = FakeProducer()
    journal: list[Any] = []
    first = await publish_many(publisher_with(producer), FakeContext(journal), records(4))
    replay = FakeContext(journal)
    again = await publish_many(publisher_with(producer), replay, records(4))
    assert again == first
    assert replay.executed == [] and len(producer.sent) == 1


async def test_a_retriable_failure_retries_the_whole_batch_with_the_same_ids() -> None:
    producer = FakeProducer()
    producer.script.append(
        lambda i, r: ProduceError(r.topic, r.key, "timed out", retriable=True) if i == 2 else None
    )
    journal: list[Any] = []
    publisher = publisher_with(producer)
    with pytest.raises(ProduceError, match=r"1 of 4 records failed \(first: record 2"):
        await publish_many(publisher, FakeContext(journal), records(4))
    assert journal == [], "a failed attempt journals nothing"

    published = await publish_many(publisher, FakeContext(journal), records(4))
    first, second = producer.sent
    assert [envelope(r)["id"] for r in first] == [envelope(r)["id"] for r in second]
    assert [p.event_id for p in published] == expected_ids(4)
    assert [p.offset for p in published] == [3, 4, 5, 6], "the acks of the attempt that succeeded"


async def test_a_permanent_refusal_is_terminal_and_names_the_record() -> None:
    producer = FakeProducer()
    refuse = lambda i, r: ProduceError(r.topic, r.key, "too large") if i == 1 else None  # noqa: E731
    producer.script.append(refuse)
    with pytest.raises(restate.TerminalError, match=r"1 of 3 records failed \(first: record 1"):
        await publish_many(publisher_with(producer), FakeContext([]), records(3))

    producer.script.append(refuse)  # dead letters must not be given up on: retried instead
    with pytest.raises(ProduceError):
        await publish_many(
            publisher_with(producer), FakeContext([]), records(3), retry_forever=True
        )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Outgoing("out", "\udcff", {"seq": 2}), "not valid UTF-8"),
        (Outgoing("out", cast(Any, b"k"), {"seq": 2}), "key must be a string"),
        (Outgoing("out", "k", {"seq": {1, 2}}), "not JSON-serialisable"),
        (("out", "k", {"seq": 2}), "expected an Outgoing"),
    ],
)
async def test_a_bad_record_fails_before_the_run_naming_its_index(bad: Any, message: str) -> None:
    producer = FakeProducer()
    ctx = FakeContext([])
    batch: list[Any] = records(4)
    batch[2] = bad
    with pytest.raises(restate.TerminalError, match=f"record 2 of 4: .*{message}"):
        await publish_many(publisher_with(producer), ctx, batch)
    assert producer.sent == [] and ctx.executed == [], "nothing published, no run"


async def test_event_types_and_raw_values() -> None:
    producer = FakeProducer()
    batch = [Outgoing("a", None, {"x": 1}), Outgoing("b", "k", {"x": 2}, event_type="custom")]
    await publish_many(publisher_with(producer), FakeContext([]), batch, event_type="default")
    assert [envelope(r)["type"] for r in producer.sent[0]] == ["default", "custom"]
    assert [r.topic for r in producer.sent[0]] == ["a", "b"]
    cloudevents = ("content-type", b"application/cloudevents+json")
    assert [list(r.headers or ()) for r in producer.sent[0]] == [[cloudevents], [cloudevents]]

    await publish_many(publisher_with(producer), FakeContext([]), batch, envelope=False)
    assert [r.value for r in producer.sent[1]] == [b'{"x":1}', b'{"x":2}'], "no envelope"
    assert [r.headers for r in producer.sent[1]] == [None, None], "no CloudEvents header"


async def test_an_empty_batch_does_nothing() -> None:
    producer = FakeProducer()
    ctx = FakeContext([])
    assert await publish_many(publisher_with(producer), ctx, []) == []
    assert ctx.executed == [] and producer.sent == []

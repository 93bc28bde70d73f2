"""GroupConsumer's asynchronous commits: one that fails (its group coordinator died with a
Kafka broker) is committed again with the next commit, even an empty one; nothing else would
commit it once the topic goes quiet, and the group's lag would stay above 0 (the fault suite's
broker case with `delivery: consumer` waited for lag 0 and saw 2 for two minutes). A
partition given up meanwhile is not committed again: another member may own it; nor is a
failed commit that a later one, sent before the failure was answered, supersedes: committing
it again rewound the group (that fault case then saw lag 100 for two minutes)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from connectors.group_consumer import GroupConsumer


class RecordingConsumer:
    """Stands in for confluent-kafka's Consumer: keeps what was committed."""

    def __init__(self) -> None:
        self.commits: list[dict[int, int]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous
        self.commits.append({tp.partition: tp.offset for tp in offsets})


def consumer_with(assigned: set[int]) -> tuple[GroupConsumer, RecordingConsumer]:
    group = GroupConsumer({"bootstrap.servers": "127.0.0.1:1"}, "orders", "g")
    recording = RecordingConsumer()
    group._consumer = recording  # type: ignore[assignment]  # only commit is called
    group.assigned = set(assigned)
    return group, recording


def answer(group: GroupConsumer, error: KafkaError | None, offsets: dict[int, int]) -> None:
    """librdkafka's commit callback, as the consumer's poll calls it."""
    callback: Any = group.properties["on_commit"]
    callback(error, [TopicPartition("orders", p, o) for p, o in offsets.items()])


TRANSPORT = KafkaError(KafkaError._TRANSPORT)


async def test_a_failed_commit_is_committed_again_by_the_next_one() -> None:
    group, recording = consumer_with({0, 1})
    try:
        await group.commit({0: 5, 1: 7})
        answer(group, TRANSPORT, {0: 5, 1: 7})
        await group.commit({})  # the delivery loop's next turn: nothing new completed
        answer(group, None, {0: 5, 1: 7})
        await group.commit({})
        await group.commit({1: 9})  # merged with nothing left to retry
    finally:
        group._executor.shutdown()
    assert recording.commits == [{0: 5, 1: 7}, {0: 5, 1: 7}, {1: 9}]


async def test_a_later_offset_wins_and_a_partition_given_up_is_not_committed_again() -> None:
    group, recording = consumer_with({0, 1})
    try:
        await group.commit({0: 5, 1: 7})
        answer(group, TRANSPORT, {0: 5, 1: 7})
        group._revoked(recording, [TopicPartition("orders", 1)])  # type: ignore[arg-type]
        await group.commit({0: 8})
        answer(group, None, {0: 8})
        await group.commit({})
    finally:
        group._executor.shutdown()
    assert recording.commits == [{0: 5, 1: 7}, {0: 8}]


async def test_a_failure_answered_after_a_later_commit_was_sent_is_not_committed_again() -> None:
    group, recording = consumer_with({0})
    try:
        await group.commit({0: 5})
        await group.commit({0: 8})  # sent before the first one's answer
        answer(group, TRANSPORT, {0: 5})
        await group.commit({})  # the delivery loop's next turn, before 8 is answered
        answer(group, None, {0: 8})
        await group.commit({})
    finally:
        group._executor.shutdown()
    assert recording.commits == [{0: 5}, {0: 8}]

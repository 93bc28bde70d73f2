"""GroupConsumer.backlog for partitions not read from yet: counted from the group's committed
offset, asked once per assignment; a coordinator that does not answer is not asked again
(the question runs on the consumer's thread, where it would hold every later poll)."""

from __future__ import annotations

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from connectors.group_consumer import GroupConsumer


class UnreadConsumer:
    """Stands in for confluent-kafka's Consumer: no position known, 1,000 records in each
    partition (cached watermarks 0 and 1,000), committed offsets answered or refused."""

    def __init__(self, committed: dict[int, int] | None) -> None:
        self.committed_offsets = committed  # None: the coordinator does not answer
        self.asked: list[list[int]] = []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, OFFSET_INVALID) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached
        return 0, 1_000

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.asked.append(sorted(tp.partition for tp in partitions))
        if self.committed_offsets is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [
            TopicPartition(tp.topic, tp.partition, self.committed_offsets.get(tp.partition, -1001))
            for tp in partitions
        ]


def consumer_with(fake: UnreadConsumer, start: str = "earliest") -> GroupConsumer:
    group = GroupConsumer({"bootstrap.servers": "127.0.0.1:1"}, "orders", "g", start=start)
    group._consumer = fake  # type: ignore[assignment]
    group.assigned = {0, 1}
    return group


async def test_unread_partitions_count_from_the_committed_offset_or_the_earliest() -> None:
    fake = UnreadConsumer({0: 400})  # partition 1: nothing committed, read from the earliest
    group = consumer_with(fake)
    try:
        assert await group.backlog() == 600 + 1_000
        assert await group.backlog() == 600 + 1_000
        assert fake.asked == [[0, 1]]  # once per assignment
        group._assigned(fake, [TopicPartition("orders", 0)])  # type: ignore[arg-type]
        assert await group.backlog() == 600
        assert fake.asked == [[0, 1], [0]]
    finally:
        group._executor.shutdown()


async def test_from_the_latest_a_partition_with_nothing_committed_has_no_backlog() -> None:
    group = consumer_with(UnreadConsumer({0: 400}), start="latest")
    try:
        assert await group.backlog() == 600
    finally:
        group._executor.shutdown()


async def test_an_unanswered_question_counts_0_and_is_not_asked_again() -> None:
    fake = UnreadConsumer(None)
    group = consumer_with(fake)
    try:
        assert await group.backlog() == 0
        assert await group.backlog() == 0
        assert fake.asked == [[0, 1]]
    finally:
        group._executor.shutdown()

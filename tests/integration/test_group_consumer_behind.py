"""The consumer's backlog (`GroupConsumer.backlog`), read from the high watermarks librdkafka
cached from its fetches: what the delivery's hold asks before holding sends for a window the
backlog can fill. Against the real broker."""

from __future__ import annotations

import uuid

import pytest

from connectors import Record, TopicAdmin, produce_records
from connectors.group_consumer import GroupConsumer
from restate_stream.stack import LocalStack

pytestmark = pytest.mark.engines


async def test_backlog_counts_the_records_left_past_the_position(
    restate_stream_stack: LocalStack,
) -> None:
    bootstrap = restate_stream_stack.bootstrap_servers
    topic = f"behind-{uuid.uuid4().hex[:8]}"
    TopicAdmin(bootstrap).create_topic(topic, 2)
    produce_records(bootstrap, topic, [Record(b"k%d" % (i % 7), b"%d" % i) for i in range(1000)])
    consumer = GroupConsumer({"bootstrap.servers": bootstrap}, topic, f"g-{topic}")
    await consumer.start()
    try:
        taken, seen = 0, set()
        for _ in range(200):  # the first polls join the group and fetch
            polled = await consumer.poll(100, 1.0)
            taken += len(polled)
            seen |= {r.partition for r in polled}
            if seen == {0, 1}:
                break
        assert seen == {0, 1} and taken < 1000
        # Once a partition was read from, its position is known and librdkafka has fetched
        # past it (1,000 records are a fetch or two): every record not taken is behind. (A
        # partition not read from yet counts 0: the hold errs toward posting.)
        assert await consumer.backlog() == 1000 - taken
        while taken < 1000:
            taken += len(await consumer.poll(1000, 1.0))
        assert await consumer.backlog() == 0
    finally:
        await consumer.close()

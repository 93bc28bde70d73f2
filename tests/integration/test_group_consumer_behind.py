"""The consumer's backlog (`GroupConsumer.backlog`), read from the high watermarks librdkafka
cached from its fetches: what the delivery's hold asks before holding sends for a window the
backlog can fill. Against the real broker."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

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
        # past it (1,000 records are a fetch or two): every record not taken is behind.
        assert await consumer.backlog() == 1000 - taken
        while taken < 1000:
            taken += len(await consumer.poll(1000, 1.0))
        assert await consumer.backlog() == 0
    finally:
        await consumer.close()


async def test_a_partition_not_read_from_yet_counts_from_the_groups_committed_offset(
    restate_stream_stack: LocalStack,
) -> None:
    """Before its first record is taken, a partition's position is unknown: it counts from
    where its reading starts (the group's committed offset, or the earliest), so the first
    full cuts of a catch-up already see the whole backlog."""
    bootstrap = restate_stream_stack.bootstrap_servers
    topic = f"behind-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    TopicAdmin(bootstrap).create_topic(topic, 2)
    records = [Record(b"a", b"%d" % i, partition=0) for i in range(600)]
    records += [Record(b"b", b"%d" % i, partition=1) for i in range(400)]
    produce_records(bootstrap, topic, records)
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 1, 150)], asynchronous=False)
    committer.close()

    consumer = GroupConsumer({"bootstrap.servers": bootstrap}, topic, group)
    await consumer.start()
    try:
        taken: list[int] = []
        for _ in range(200):  # the first polls join the group and fetch
            taken = [r.partition for r in await consumer.poll(1, 1.0)]
            if taken:
                break
        assert len(taken) == 1
        # One record taken of the 1,000 - 150 past where the group starts, whichever partition
        # it came from; the other's watermark is cached once its first fetch is answered.
        expected = 1000 - 150 - 1
        behind = 0
        for _ in range(100):
            behind = await consumer.backlog()
            if behind == expected:
                break
            await asyncio.sleep(0.1)
        assert behind == expected
    finally:
        await consumer.close()


async def test_a_full_local_queue_holds_fetching_for_10_ms_not_librdkafkas_second(
    restate_stream_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Once librdkafka's local queue holds `queued.min.messages`, it stops fetching for
    `fetch.queue.backoff.ms`: by default a second, during which a member that drained its
    queue read nothing (connectors/group_consumer.py, FETCH_PROPERTIES). The threshold is
    lowered here so that a small backlog fills the queue; librdkafka's own log says how long
    each pause lasts."""
    bootstrap = restate_stream_stack.bootstrap_servers
    topic = f"behind-{uuid.uuid4().hex[:8]}"
    TopicAdmin(bootstrap).create_topic(topic, 1)
    produce_records(bootstrap, topic, [Record(b"k", b"%d" % i) for i in range(5000)])
    consumer = GroupConsumer(
        {"bootstrap.servers": bootstrap},
        topic,
        f"g-{topic}",
        properties={"queued.min.messages": 500, "debug": "fetch"},
    )
    with caplog.at_level(logging.DEBUG, logger="connectors.librdkafka"):
        await consumer.start()
        try:
            taken = 0
            for _ in range(500):
                taken += len(await consumer.poll(100, 1.0))
                if taken == 5000:
                    break
        finally:
            await consumer.close()
    assert taken == 5000
    pauses = [r.getMessage() for r in caplog.records if "Queue full" in r.getMessage()]
    assert pauses, "the local queue never filled: nothing was measured"
    assert all("Fetch backoff for 10ms" in p for p in pauses), pauses[:3]

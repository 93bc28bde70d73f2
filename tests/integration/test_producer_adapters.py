"""Both producer adapters against the real broker: concurrent sends, acks, keys and headers;
and a clear ProduceError when there is no broker at all."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors import TopicAdmin
from connectors.producer import Delivery, ProduceError, create_producer
from restate_stream._util.ports import free_ports
from restate_stream.stack import LocalStack

pytestmark = pytest.mark.engines

Client = Literal["confluent", "aiokafka"]
CLIENTS: list[Client] = ["confluent", "aiokafka"]
RECORDS = 200
PARTITIONS = 3


Seen = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def key(i: int) -> bytes:
    return f"key-{i % 7}".encode()


def headers(i: int) -> list[tuple[str, bytes]]:
    return [("seq", str(i).encode()), ("source", b"test")]


def read_all(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[Seen]:
    """Every record of `topic` from the beginning (and any beyond `count`: duplicates)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
        }
    )
    # Assigned, not subscribed: no group join (a rebalance can take 10 s+ on a loaded machine).
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen: list[Seen] = []
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            got = [(name, value if isinstance(value, bytes) else b"") for name, value in pairs]
            seen.append((msg.key(), msg.value(), got))
        while (msg := consumer.poll(1.0)) is not None:
            seen.append((msg.key(), msg.value(), []))
    finally:
        consumer.close()
    return seen


@pytest.mark.parametrize("client", CLIENTS)
async def test_concurrent_sends_are_all_acknowledged_once(
    restate_stream_stack: LocalStack, client: Client
) -> None:
    bootstrap = restate_stream_stack.bootstrap_servers
    topic = f"producers-{client}-{uuid.uuid4().hex[:8]}"
    TopicAdmin(bootstrap).create_topic(topic, PARTITIONS)

    producer = create_producer({"bootstrap.servers": bootstrap}, client)
    try:
        deliveries: list[Delivery] = await asyncio.gather(
            *(
                producer.send(topic, f"value-{i}".encode(), key(i), headers(i))
                for i in range(RECORDS)
            )
        )
    finally:
        await producer.close()

    assert all(d.topic == topic for d in deliveries)
    assert len({(d.partition, d.offset) for d in deliveries}) == RECORDS
    assert {d.partition for d in deliveries} <= set(range(PARTITIONS))
    assert all(d.timestamp_ms is not None and d.timestamp_ms > 0 for d in deliveries)

    seen = read_all(bootstrap, topic, RECORDS)
    assert sorted(seen) == sorted(
        (key(i), f"value-{i}".encode(), headers(i)) for i in range(RECORDS)
    )


@pytest.mark.parametrize("client", CLIENTS)
async def test_no_broker_fails_fast_naming_the_topic(client: Client) -> None:
    (port,) = free_ports(1)  # free means closed: nothing listens there
    timeout = {"confluent": "message.timeout.ms", "aiokafka": "request.timeout.ms"}[client]
    producer = create_producer({"bootstrap.servers": f"127.0.0.1:{port}", timeout: "2000"}, client)
    try:
        # A hang would end in TimeoutError, not ProduceError: the bound is not a timing claim.
        with pytest.raises(ProduceError, match="topic 'nowhere'") as raised:
            await asyncio.wait_for(producer.send("nowhere", b"v", key=b"k-1"), 15)
    finally:
        await producer.close()
    assert "key 'k-1'" in str(raised.value)
    assert raised.value.topic == "nowhere"

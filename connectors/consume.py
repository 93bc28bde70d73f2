"""Read a topic once, start to end, for tools: no group membership, no committed offsets.

The consumer assigns partitions itself and never commits, so reading leaves no trace on the
broker: librdkafka insists on a group.id, which is a throwaway name here that no offsets are
ever stored under.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from connectors import errors as kafka_errors
from connectors.base_errors import KafkaClusterError
from connectors.logs import Config, client_properties


class TopicUnreadableError(KafkaClusterError, ConnectionError):
    """The broker could not be asked (down, unreachable): the message names the topic."""


class TopicNotFoundError(KafkaClusterError, LookupError):
    pass


@dataclass(frozen=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


def _consumer(config: Config) -> Consumer:
    return kafka_errors.new_client(
        "Kafka consumer",
        Consumer,
        {
            **client_properties(config),
            "group.id": f"restate-stream-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "enable.partition.eof": "true",
        },
    )


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise TopicNotFoundError(f"topic {topic!r} does not exist")
    return sorted(found.partitions)


def _ends(consumer: Consumer, topic: str, partitions: list[int], timeout: float) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
        for p in partitions
    }


def partition_count(config: Config, topic: str, timeout: float = 10.0) -> int:
    """How many partitions `topic` has; TopicNotFoundError if it does not exist."""
    consumer = _consumer(config)
    try:
        return len(_partitions(consumer, topic, timeout))
    except KafkaException as exc:
        raise TopicUnreadableError(
            f"cannot read the metadata of {topic!r}: {kafka_errors.reason_text(exc)}"
        ) from exc
    finally:
        consumer.close()


def end_offsets(config: Config, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> high watermark (the offset the next record will get)."""
    consumer = _consumer(config)
    try:
        return _ends(consumer, topic, _partitions(consumer, topic, timeout), timeout)
    except KafkaException as exc:
        raise TopicUnreadableError(
            f"cannot read offsets of {topic!r}: {kafka_errors.reason_text(exc)}"
        ) from exc
    finally:
        consumer.close()


def read_topic(
    config: Config,
    topic: str,
    *,
    start: Mapping[int, int] | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[ConsumedRecord]:
    """Every record of `topic` from `start` (partition -> offset; default: the beginning) up
    to the end as it was when called, ordered by partition, then offset; the first `limit`."""
    consumer = _consumer(config)
    try:
        partitions = _partitions(consumer, topic, min(timeout, 10.0))
        ends = _ends(consumer, topic, partitions, min(timeout, 10.0))
        begin = {p: (start or {}).get(p, OFFSET_BEGINNING) for p in partitions}
        # A partition is done once its position reaches the end seen at the start.
        pending = {p for p in partitions if ends[p] > max(begin[p], 0)}
        consumer.assign([TopicPartition(topic, p, begin[p]) for p in sorted(pending)])
        records: list[ConsumedRecord] = []
        taken = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic!r}: partitions {sorted(pending)} not read to the end "
                    f"within {timeout:g}s ({len(records)} records read)"
                )
            message = consumer.poll(0.2)
            if message is None:
                continue
            partition = message.partition()
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                if error.retriable():
                    continue  # librdkafka retries by itself; the deadline bounds the wait
                raise TopicUnreadableError(f"reading {topic!r}: {error.str()}")
            offset = message.offset()
            if partition not in pending or offset is None:
                continue  # a partition read far enough keeps fetching until the end
            if error is None and offset < ends[partition]:
                kind, ts = message.timestamp()
                timestamp = None if kind == TIMESTAMP_NOT_AVAILABLE else ts
                records.append(
                    ConsumedRecord(
                        topic, partition, offset, message.key(), message.value(), timestamp
                    )
                )
                taken[partition] += 1
            # With a limit, each partition's first `limit` records make the overall first ones.
            full = limit is not None and taken[partition] >= limit
            if full or offset + (0 if error is not None else 1) >= ends[partition]:
                pending.discard(partition)
        records.sort(key=lambda r: (r.partition, r.offset))
        return records[:limit] if limit is not None else records
    except KafkaException as exc:
        raise TopicUnreadableError(
            f"cannot read {topic!r}: {kafka_errors.reason_text(exc)}"
        ) from exc
    finally:
        consumer.close()


def read_partition(
    config: Config,
    topic: str,
    partition: int,
    offset: int | None,
    limit: int,
    timeout: float = 10.0,
) -> list[ConsumedRecord]:
    """Up to `limit` records of one partition from `offset` (None: its first record, the low
    watermark), in order, ending at the end the partition had when called. An offset that
    holds no record (compacted, a transaction marker) gives the next one: the records a
    consumer positioned there gets."""
    consumer = _consumer(config)
    try:
        _partitions(consumer, topic, timeout)
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout
        )
        start = low if offset is None else max(offset, low)
        records: list[ConsumedRecord] = []
        if start >= high or limit < 1:
            return records
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while len(records) < limit:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic}[{partition}] from {start}: {len(records)} of up to "
                    f"{limit} records read within {timeout:g}s"
                )
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                if error.retriable():
                    continue
                raise TopicUnreadableError(f"reading {topic}[{partition}]@{start}: {error.str()}")
            at = message.offset()
            if at is None or at >= high:
                break
            kind, ts = message.timestamp()
            timestamp = None if kind == TIMESTAMP_NOT_AVAILABLE else ts
            records.append(
                ConsumedRecord(topic, partition, at, message.key(), message.value(), timestamp)
            )
            if at + 1 >= high:
                break
        return records
    except KafkaException as exc:
        raise TopicUnreadableError(
            f"cannot read {topic}[{partition}]@{offset}: {kafka_errors.reason_text(exc)}"
        ) from exc
    finally:
        consumer.close()


def read_record(
    config: Config, topic: str, partition: int, offset: int | None, timeout: float = 10.0
) -> ConsumedRecord | None:
    """The record a consumer positioned at `offset` gets first; None at the partition's end."""
    records = read_partition(config, topic, partition, offset, 1, timeout)
    return records[0] if records else None

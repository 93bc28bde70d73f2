"""Topic administration and broker readiness over confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition

# NewTopic, NewPartitions and OffsetSpec are public API but missing from the type exports.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from connectors.logs import Config, client_properties
from restate_stream.errors import RestateStreamError


class KafkaUnavailableError(RestateStreamError, RuntimeError):
    pass


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group has committed nothing for this partition
    end: int  # the high watermark: offset of the next record to be written
    lag: int


class TopicAdmin:
    """Topic and consumer-group administration for one Kafka cluster.

    `config` is a bootstrap servers string, or librdkafka properties (SASL/SSL included),
    the same properties Restate is given for the cluster.
    """

    def __init__(self, config: Config) -> None:
        self._client = AdminClient(client_properties(config))

    def broker_count(self, timeout: float = 2.0) -> int:
        """Brokers in the cluster's metadata: one request (the port opens before brokers answer).

        Raises KafkaUnavailableError when no answer comes within `timeout`; callers that wait
        for a starting broker poll this with one TopicAdmin.
        """
        try:
            return len(self._client.list_topics(timeout=timeout).brokers)
        except KafkaException as exc:
            raise KafkaUnavailableError(
                f"no answer to a metadata request within {timeout:g}s: {exc}"
            ) from exc

    def topics(self, timeout: float = 10.0) -> dict[str, int]:
        """Topic name -> partition count, as the broker's metadata reports it."""
        metadata = self._client.list_topics(timeout=timeout)
        return {name: len(t.partitions) for name, t in metadata.topics.items()}

    def create_topic(
        self,
        name: str,
        partitions: int | None = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> bool:
        """Create `name`; returns False if it already existed. Waits until metadata shows it.

        None for partitions or replication factor leaves them to the broker's defaults.
        """
        topic = NewTopic(
            name,
            num_partitions=-1 if partitions is None else partitions,
            replication_factor=-1 if replication_factor is None else replication_factor,
            config=dict(config or {}),
        )
        future = self._client.create_topics([topic], operation_timeout=timeout)[name]
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            return False
        # A local loop: connectors may not use restate_stream's poll helper.
        deadline = time.monotonic() + timeout
        while (shown := self.topics(timeout).get(name)) is None or (
            partitions is not None and shown < partitions
        ):
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"topic {name!r} was created but metadata did not show it "
                    f"with {partitions} partition(s) within {timeout:g}s (shown: {shown})"
                )
            time.sleep(0.1)
        return True

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        self._client.delete_topics([name], operation_timeout=timeout)[name].result(timeout)

    def set_topic_config(self, name: str, config: Mapping[str, str], timeout: float = 30.0) -> None:
        """Set topic-level configs (others keep their values)."""
        resource = ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in config.items()
            ],
        )
        futures = self._client.incremental_alter_configs([resource], request_timeout=timeout)
        for future in futures.values():
            future.result(timeout)

    def add_partitions(self, name: str, total: int, timeout: float = 30.0) -> None:
        """Grow `name` to `total` partitions (Kafka cannot shrink a topic)."""
        request = NewPartitions(name, total)
        self._client.create_partitions([request], operation_timeout=timeout)[name].result(timeout)

    def group_has_members(self, group: str, timeout: float = 10.0) -> bool:
        """Whether any consumer is in `group` now (an unknown group has none)."""
        future = self._client.describe_consumer_groups([group], request_timeout=timeout)[group]
        try:
            description = future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return False
            raise  # a timeout or an auth error says nothing about the members
        return bool(description.members)

    def group_lag(self, group: str, topic: str, timeout: float = 10.0) -> list[PartitionLag]:
        """Per partition of `topic`: the group's committed offset, the end offset and the lag."""
        partitions = self.topics(timeout).get(topic)
        if partitions is None:
            raise KafkaException(f"topic {topic!r} does not exist")
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        committed_future = self._client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, wanted)], request_timeout=timeout
        )[group]
        committed = {
            tp.partition: tp.offset for tp in committed_future.result(timeout).topic_partitions
        }
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        ends = self._client.list_offsets({tp: latest for tp in wanted}, request_timeout=timeout)
        result = []
        for tp in wanted:
            end = ends[tp].result(timeout).offset
            done = committed.get(tp.partition)
            done = done if done is not None and done >= 0 else None
            result.append(PartitionLag(tp.partition, done, end, end - (done or 0)))
        return result

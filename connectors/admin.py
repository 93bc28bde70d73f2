"""Topic administration and broker readiness over confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

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

from connectors.logs import Config, client_properties, kafka_reason
from restate_stream._util.secrets import scrub, secret_values
from restate_stream.errors import RestateStreamError


class KafkaUnavailableError(RestateStreamError, RuntimeError):
    pass


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group has committed nothing for this partition
    end: int  # the high watermark: offset of the next record to be written
    lag: int


@dataclass(frozen=True)
class Replicas:
    leader: int  # -1 while the partition has none (its leader died, no new one elected yet)
    replicas: list[int]
    isr: list[int]


class TopicAdmin:
    """Topic and consumer-group administration for one Kafka cluster.

    `config` is a bootstrap servers string, or librdkafka properties (SASL/SSL included),
    the same properties Restate is given for the cluster.
    """

    def __init__(self, config: Config) -> None:
        self._properties = client_properties(config)  # also what its consumers get
        # librdkafka tells why a request failed (a refused login...) only to error_cb; the
        # last such error goes into the exception (metadata failures alone say "transport").
        self._last_error: KafkaError | None = None
        with_errors: dict[str, Any] = {"error_cb": self._keep_error, **self._properties}
        self._client = AdminClient(with_errors)

    def _keep_error(self, error: KafkaError) -> None:
        if error.code() != KafkaError._ALL_BROKERS_DOWN:  # says less than the error before it
            self._last_error = error

    def _unavailable(self, what: str, exc: KafkaException) -> KafkaUnavailableError:
        """The error for a failed request: what failed, where, and librdkafka's last word."""
        self._client.poll(0)  # serves queued error_cb calls
        servers = self._properties.get("bootstrap.servers", "?")
        message = f"Kafka at {servers}: {what}: {kafka_reason(exc)}"
        if self._last_error is not None:
            message += f" (last client error: {self._last_error.str()})"
            self._last_error = None  # told once: a later failure is not blamed on it
        # librdkafka quotes rejected values; never a secret's.
        return KafkaUnavailableError(scrub(message, secret_values(self._properties)))

    def broker_count(self, timeout: float = 2.0) -> int:
        """Brokers in the cluster's metadata: one request (the port opens before brokers answer).

        Raises KafkaUnavailableError when no answer comes within `timeout`; callers that wait
        for a starting broker poll this with one TopicAdmin.
        """
        try:
            return len(self._client.list_topics(timeout=timeout).brokers)
        except KafkaException as exc:
            what = f"no answer to a metadata request within {timeout:g}s"
            raise self._unavailable(what, exc) from exc

    def broker_ids(self, timeout: float = 2.0) -> set[int]:
        """Ids of the brokers in the cluster's metadata (a fenced, i.e. dead, broker drops out).

        Raises KafkaUnavailableError when no answer comes within `timeout`.
        """
        try:
            return set(self._client.list_topics(timeout=timeout).brokers)
        except KafkaException as exc:
            what = f"no answer to a metadata request within {timeout:g}s"
            raise self._unavailable(what, exc) from exc

    def partition_replicas(self, topic: str, timeout: float = 10.0) -> dict[int, Replicas]:
        """Partition -> its leader, replicas and in-sync replicas (broker ids) of `topic`."""
        metadata = self._client.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaUnavailableError(
                f"no metadata for topic {topic!r}: {metadata.error if metadata else 'unknown'}"
            )
        return {
            p: Replicas(m.leader, list(m.replicas), list(m.isrs))
            for p, m in sorted(metadata.partitions.items())
        }

    def topics(self, timeout: float = 10.0) -> dict[str, int]:
        """Topic name -> partition count, as the broker's metadata reports it."""
        try:
            metadata = self._client.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise self._unavailable(f"listing topics failed within {timeout:g}s", exc) from exc
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
        return bool(self.group_member_ids(group, timeout))

    def group_member_ids(self, group: str, timeout: float = 10.0) -> frozenset[str]:
        """The member ids of `group` now (an unknown group has none); a consumer that is
        recreated joins with a new id."""
        future = self._client.describe_consumer_groups([group], request_timeout=timeout)[group]
        try:
            description = future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return frozenset()
            raise  # a timeout or an auth error says nothing about the members
        return frozenset(m.member_id for m in description.members)

    def set_group_offsets(
        self, group: str, topic: str, offsets: Mapping[int, int], timeout: float = 10.0
    ) -> None:
        """Commit `offsets` (partition -> next offset to read) of `topic` for `group`.

        Kafka accepts a commit from outside the group only while it has no members; the
        group's other offsets stay. Committed by a consumer that never joins, for the same
        reason as in committed_offsets.
        """
        consumer = self._group_consumer(group)
        try:
            wanted = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
            result = consumer.commit(offsets=wanted, asynchronous=False)
            for tp in result or []:
                if tp.error is not None:
                    raise KafkaException(tp.error)
        finally:
            consumer.close()

    def _group_consumer(self, group: str) -> Consumer:
        return Consumer({**self._properties, "group.id": group, "enable.auto.commit": "false"})

    def committed_offsets(
        self, group: str, topic: str, partitions: int, timeout: float = 10.0
    ) -> dict[int, int]:
        """Partition -> `group`'s committed offset (negative: none) for `topic`.

        Asked through a consumer that never joins the group, not through the AdminClient's
        list_consumer_group_offsets: librdkafka crashes the process (SIGSEGV) when that
        request meets NOT_COORDINATOR, e.g. while a new group's coordinator loads
        (librdkafka #5040); the consumer's own offset fetch retries instead.
        """
        consumer = Consumer({**self._properties, "group.id": group, "enable.auto.commit": "false"})
        try:
            wanted = [TopicPartition(topic, p) for p in range(partitions)]
            return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout)}
        finally:
            consumer.close()

    def group_lag(self, group: str, topic: str, timeout: float = 10.0) -> list[PartitionLag]:
        """Per partition of `topic`: the group's committed offset, the end offset and the lag."""
        partitions = self.topics(timeout).get(topic)
        if partitions is None:
            raise KafkaException(f"topic {topic!r} does not exist")
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        committed = self.committed_offsets(group, topic, partitions, timeout)
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        ends = self._client.list_offsets({tp: latest for tp in wanted}, request_timeout=timeout)
        result = []
        for tp in wanted:
            end = ends[tp].result(timeout).offset
            done = committed.get(tp.partition)
            done = done if done is not None and done >= 0 else None
            result.append(PartitionLag(tp.partition, done, end, end - (done or 0)))
        return result

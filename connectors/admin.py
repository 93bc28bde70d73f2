"""Topic administration and broker readiness over confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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

from connectors.errors import (
    KafkaAdminError,
    KafkaUnavailableError,
    access_refused,
    new_client,
    request_failed,
)
from connectors.logs import Config, client_properties
from connectors.secrets import secret_values

__all__ = ["KafkaAdminError", "KafkaUnavailableError", "PartitionLag", "Replicas", "TopicAdmin"]

T = TypeVar("T")


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
    the same properties Restate is given for the cluster. Every failure is a KafkaAdminError
    (KafkaUnavailableError when the cluster did not answer) naming the operation, the topic
    or group, the bootstrap servers and librdkafka's reason; never a raw KafkaException.
    It is raised outside the `except` that caught librdkafka's exception, with no cause:
    that exception's text is unscrubbed (a rejected secret), and --debug prints the chain.
    """

    def __init__(self, config: Config) -> None:
        self._properties = client_properties(config)  # also what its consumers get
        self._servers = str(self._properties.get("bootstrap.servers", "?"))
        # librdkafka tells why a request failed (a refused login...) only to error_cb; the
        # last such error goes into the exception (metadata failures alone say "transport").
        self._last_error: KafkaError | None = None
        with_errors: dict[str, Any] = {"error_cb": self._keep_error, **self._properties}
        self._client = new_client("Kafka admin client", AdminClient, with_errors)

    def _keep_error(self, error: KafkaError) -> None:
        if error.code() != KafkaError._ALL_BROKERS_DOWN:  # says less than the error before it
            self._last_error = error

    def _failed(
        self,
        what: str,
        exc: BaseException | KafkaError,
        *,
        by_admin: bool = True,
        unavailable: bool | None = None,
    ) -> KafkaAdminError:
        """The error for a failed request: what failed, where, and librdkafka's last word
        (`unavailable` as in request_failed). A request not `by_admin` (a group consumer's)
        is not explained by the admin client's last error: that one stays for the admin
        client's next failure."""
        extra = ""
        if by_admin:
            self._client.poll(0)  # serves queued error_cb calls
        if by_admin and self._last_error is not None:
            extra = f" (last client error: {self._last_error.str()})"
            self._last_error = None  # told once: a later failure is not blamed on it
        # librdkafka quotes rejected values; never a secret's.
        secrets = secret_values(self._properties)
        return request_failed(what, self._servers, exc, secrets, extra, unavailable)

    def _request(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, which sends a request (librdkafka may refuse it at once) as our error."""
        try:
            return call()
        except KafkaException as exc:
            error = self._failed(what, exc)
        raise error

    def _result(self, future: Any, what: str, timeout: float) -> Any:
        """A request's result; its failure (or no answer within `timeout`) as our error,
        whose `.code` names librdkafka's error (callers accept some: TOPIC_ALREADY_EXISTS)."""
        try:
            return future.result(timeout)
        except KafkaException as exc:
            error = self._failed(what, exc)
        except TimeoutError:  # librdkafka's own request timeout did not fire first
            error = self._failed(what, TimeoutError(f"no answer within {timeout:g}s"))
        raise error

    def _metadata(self, what: str, timeout: float, topic: str | None = None) -> Any:
        try:
            return self._client.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            self._client.poll(0)  # serves queued error_cb calls: a refused login is told there
            # Readiness polls retry KafkaUnavailableError: a broker still starting fails
            # metadata requests in several ways, all worth asking again; wrong credentials or
            # missing rights are not (polls would spin on them, plan would say "unavailable").
            refused = access_refused(exc, self._last_error)
            error = self._failed(f"{what} (waited {timeout:g}s)", exc, unavailable=not refused)
        raise error

    def broker_count(self, timeout: float = 2.0) -> int:
        """Brokers in the cluster's metadata: one request (the port opens before brokers answer).

        Raises KafkaUnavailableError when no answer comes within `timeout`; callers that wait
        for a starting broker poll this with one TopicAdmin.
        """
        return len(self._metadata("reading the cluster's brokers", timeout).brokers)

    def broker_ids(self, timeout: float = 2.0) -> set[int]:
        """Ids of the brokers in the cluster's metadata (a fenced, i.e. dead, broker drops out).

        Raises KafkaUnavailableError when no answer comes within `timeout`.
        """
        return set(self._metadata("reading the cluster's brokers", timeout).brokers)

    def partition_replicas(self, topic: str, timeout: float = 10.0) -> dict[int, Replicas]:
        """Partition -> its leader, replicas and in-sync replicas (broker ids) of `topic`."""
        what = f"reading the partitions of topic {topic!r}"
        metadata = self._metadata(what, timeout, topic).topics.get(topic)
        # Unavailable (waits retry it): a restarted broker answers with stale metadata, or
        # none for the topic, until it has caught up.
        if metadata is None:
            raise KafkaUnavailableError(f"{what} on {self._servers} failed: no metadata for it")
        if metadata.error is not None:
            raise self._failed(what, metadata.error, unavailable=True)
        return {
            p: Replicas(m.leader, list(m.replicas), list(m.isrs))
            for p, m in sorted(metadata.partitions.items())
        }

    def topics(self, timeout: float = 10.0) -> dict[str, int]:
        """Topic name -> partition count, as the broker's metadata reports it."""
        metadata = self._metadata("listing topics", timeout)
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
        asked = [
            f"{partitions} partition(s)" if partitions is not None else "",
            f"replication factor {replication_factor}" if replication_factor is not None else "",
        ]
        details = " and ".join(a for a in asked if a)
        what = f"creating topic {name!r}" + (f" with {details}" if details else "")
        futures = self._request(
            what,
            lambda: self._client.create_topics(
                [topic], operation_timeout=timeout, request_timeout=timeout
            ),
        )
        try:
            self._result(futures[name], what, timeout)
        except KafkaAdminError as exc:
            if exc.code != "TOPIC_ALREADY_EXISTS":
                raise
            return False
        # A local loop: connectors may not use restate_stream's poll helper.
        deadline = time.monotonic() + timeout
        while (shown := self.topics(timeout).get(name)) is None or (
            partitions is not None and shown < partitions
        ):
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"topic {name!r} was created on {self._servers} but metadata did not show "
                    f"it with {partitions} partition(s) within {timeout:g}s (shown: {shown})"
                )
            time.sleep(0.1)
        return True

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        what = f"deleting topic {name!r}"
        futures = self._request(
            what,
            lambda: self._client.delete_topics(
                [name], operation_timeout=timeout, request_timeout=timeout
            ),
        )
        self._result(futures[name], what, timeout)

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
        what = f"setting {', '.join(sorted(config))} of topic {name!r}"
        futures = self._request(
            what,
            lambda: self._client.incremental_alter_configs([resource], request_timeout=timeout),
        )
        for future in futures.values():
            self._result(future, what, timeout)

    def add_partitions(self, name: str, total: int, timeout: float = 30.0) -> None:
        """Grow `name` to `total` partitions (Kafka cannot shrink a topic)."""
        what = f"growing topic {name!r} to {total} partition(s)"
        request = NewPartitions(name, total)
        futures = self._request(
            what,
            lambda: self._client.create_partitions(
                [request], operation_timeout=timeout, request_timeout=timeout
            ),
        )
        self._result(futures[name], what, timeout)

    def group_has_members(self, group: str, timeout: float = 10.0) -> bool:
        """Whether any consumer is in `group` now (an unknown group has none)."""
        return bool(self.group_member_ids(group, timeout))

    def group_member_ids(self, group: str, timeout: float = 10.0) -> frozenset[str]:
        """The member ids of `group` now (an unknown group has none); a consumer that is
        recreated joins with a new id."""
        what = f"describing consumer group {group!r}"
        futures = self._request(
            what, lambda: self._client.describe_consumer_groups([group], request_timeout=timeout)
        )
        try:
            description = self._result(futures[group], what, timeout)
        except KafkaAdminError as exc:
            if exc.code != "GROUP_ID_NOT_FOUND":
                raise  # a timeout or an auth error says nothing about the members
            return frozenset()
        return frozenset(m.member_id for m in description.members)

    def set_group_offsets(
        self, group: str, topic: str, offsets: Mapping[int, int], timeout: float = 10.0
    ) -> None:
        """Commit `offsets` (partition -> next offset to read) of `topic` for `group`.

        Kafka accepts a commit from outside the group only while it has no members; the
        group's other offsets stay. Committed by a consumer that never joins, for the same
        reason as in committed_offsets.
        """
        what = f"committing offsets of topic {topic!r} for consumer group {group!r}"
        consumer = self._group_consumer(group)
        try:
            wanted = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
            result = consumer.commit(offsets=wanted, asynchronous=False)
        except KafkaException as exc:
            error = self._failed(what, exc, by_admin=False)
        else:
            refused = [(tp.partition, tp.error) for tp in result or [] if tp.error is not None]
            if not refused:
                return
            partition, reason = refused[0]
            error = self._failed(f"{what} (partition {partition})", reason, by_admin=False)
        finally:
            consumer.close()
        raise error

    def _group_consumer(self, group: str) -> Consumer:
        """A consumer of `group` that never joins it (it only reads and commits offsets)."""
        properties = {**self._properties, "group.id": group, "enable.auto.commit": "false"}
        return new_client("Kafka consumer", Consumer, properties)

    def committed_offsets(
        self, group: str, topic: str, partitions: int, timeout: float = 10.0
    ) -> dict[int, int]:
        """Partition -> `group`'s committed offset (negative: none) for `topic`.

        Asked through a consumer that never joins the group, not through the AdminClient's
        list_consumer_group_offsets: librdkafka crashes the process (SIGSEGV) when that
        request meets NOT_COORDINATOR, e.g. while a new group's coordinator loads
        (librdkafka #5040); the consumer's own offset fetch retries instead.
        """
        consumer = self._group_consumer(group)
        try:
            wanted = [TopicPartition(topic, p) for p in range(partitions)]
            return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout)}
        except KafkaException as exc:
            what = f"reading the committed offsets of consumer group {group!r} on topic {topic!r}"
            error = self._failed(what, exc, by_admin=False)
        finally:
            consumer.close()
        raise error

    def group_lag(self, group: str, topic: str, timeout: float = 10.0) -> list[PartitionLag]:
        """Per partition of `topic`: the group's committed offset, the end offset and the lag."""
        what = f"reading the lag of consumer group {group!r} on topic {topic!r}"
        partitions = self.topics(timeout).get(topic)
        if partitions is None:
            raise KafkaAdminError(
                f"{what} on {self._servers} failed: the topic does not exist",
                "UNKNOWN_TOPIC_OR_PART",
            )
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        committed = self.committed_offsets(group, topic, partitions, timeout)
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        ends = self._request(
            what,
            lambda: self._client.list_offsets(
                {tp: latest for tp in wanted}, request_timeout=timeout
            ),
        )
        result = []
        for tp in wanted:
            end = self._result(ends[tp], f"{what} (end of partition {tp.partition})", timeout)
            done = committed.get(tp.partition)
            done = done if done is not None and done >= 0 else None
            result.append(PartitionLag(tp.partition, done, end.offset, end.offset - (done or 0)))
        return result

"""Topic administration and broker readiness over confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException

# NewTopic is public API but missing from the package's type exports.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


class KafkaUnavailableError(RuntimeError):
    pass


class TopicAdmin:
    def __init__(self, bootstrap_servers: str, **properties: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._client = AdminClient({"bootstrap.servers": bootstrap_servers, **properties})

    def topics(self, timeout: float = 10.0) -> dict[str, int]:
        """Topic name -> partition count, as the broker's metadata reports it."""
        metadata = self._client.list_topics(timeout=timeout)
        return {name: len(t.partitions) for name, t in metadata.topics.items()}

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> bool:
        """Create `name`; returns False if it already existed. Waits until metadata shows it."""
        topic = NewTopic(name, partitions, replication_factor, config=dict(config or {}))
        future = self._client.create_topics([topic], operation_timeout=timeout)[name]
        try:
            future.result(timeout)
            created = True
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            created = False
        deadline = time.monotonic() + timeout
        while self.topics(timeout).get(name) != partitions:
            if time.monotonic() > deadline:
                if not created:
                    break  # existed before with another partition count: the caller's concern
                raise KafkaUnavailableError(f"topic {name!r} was created but never showed up")
            time.sleep(0.1)
        return created

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        self._client.delete_topics([name], operation_timeout=timeout)[name].result(timeout)


def wait_for_broker(bootstrap_servers: str, timeout: float = 60.0) -> None:
    """Return once the broker answers a metadata request; the port opens before that."""
    deadline = time.monotonic() + timeout
    admin = TopicAdmin(bootstrap_servers)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            metadata = admin._client.list_topics(timeout=2.0)
            if metadata.brokers:
                return
        except KafkaException as exc:
            last_error = exc
        time.sleep(0.2)
    raise KafkaUnavailableError(
        f"Kafka at {bootstrap_servers} did not answer a metadata request within {timeout:.0f}s"
        + (f": {last_error}" if last_error else "")
    )

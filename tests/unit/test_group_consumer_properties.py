"""The properties GroupConsumer gives librdkafka: its fetch default, and the cluster's own
properties over it (the bindings file's cluster block is any librdkafka property)."""

from __future__ import annotations

from connectors.group_consumer import FETCH_PROPERTIES, GroupConsumer


def test_a_full_local_queue_holds_fetching_for_10_ms_by_default() -> None:
    consumer = GroupConsumer({"bootstrap.servers": "127.0.0.1:1"}, "orders", "g")
    assert (
        consumer.properties["fetch.queue.backoff.ms"]
        == 10
        == (FETCH_PROPERTIES["fetch.queue.backoff.ms"])
    )


def test_the_clusters_own_fetch_backoff_wins() -> None:
    cluster = {"bootstrap.servers": "127.0.0.1:1", "fetch.queue.backoff.ms": 500}
    consumer = GroupConsumer(cluster, "orders", "g")  # type: ignore[arg-type]
    assert consumer.properties["fetch.queue.backoff.ms"] == 500
    assert consumer.properties["group.id"] == "g"  # what the consumer must own stays its own

"""Which object a batched record goes to: its key's (`per: key`) or its source partition's
(`per: partition`). Delivery, the object side and `dlq redrive` all ask here, so a record
and its redrive reach the same object and its high-water offsets."""

from __future__ import annotations

from restate_stream.bindings.schema import BatchPer
from restate_stream.runtime.event import object_key_for


def partition_object_key(topic: str, partition: int) -> str:
    """The object of a source partition: "topic/partition" (topic names have no '/')."""
    return f"{topic}/{partition}"


def batch_object_key(per: BatchPer, topic: str, partition: int, key: bytes | None) -> str:
    if per == "partition":
        return partition_object_key(topic, partition)
    return object_key_for(key)

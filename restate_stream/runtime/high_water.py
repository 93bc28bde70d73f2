"""High-water offsets: per binding and source partition, the highest offset an object has
applied, kept in the object's own state and written in the same invocation as the handler's
changes. A record at or below it was applied before (a redelivery) and is dropped.

Batched bindings (batch/handler.py) and per-record bindings on an exclusive object handler
(runtime/bound.py) keep the same state entry, so whichever delivery brings a record, a copy of
one already applied is recognised: that is what makes a hand-over between a Restate
subscription and restate-stream's consumer exact (docs/architecture.md, "Moving a binding
between deliveries").
"""

from __future__ import annotations

HIGH_WATER_PREFIX = "restate-stream.high-water/"


def high_water_state(binding: str) -> str:
    """The state key of a binding's high-water offsets: {"topic/partition": offset}."""
    return f"{HIGH_WATER_PREFIX}{binding}"


def source_name(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"

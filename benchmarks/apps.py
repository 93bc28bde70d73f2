"""The handlers the end-to-end benchmark drives: a keyed counter, one state write per record
(unbatched) or per batch of one key's records (batched; one handler per batched binding, as
each binding keeps its own high-water offsets)."""

from __future__ import annotations

import time
from typing import Any

import restate

from benchmarks.minimal_bridge import counter as minimal_bridge_counter
from restate_stream.runtime.event import KafkaEvent

counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def count(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + 1)


# The same counter as a restate-stream bound handler (the worker wraps it: the benchmark's
# bindings file binds it), to show the framework's cost over the bare SDK.
bound_counter = restate.VirtualObject("BenchBoundCounter")


@bound_counter.handler(name="count")
async def count_bound(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + 1)


# A handler per round too: each round's binding keeps its own high-water offsets (a second
# round re-reading the topic into one binding would be dropped as redelivered).
for _i in range(16):
    bound_counter.handler(name=f"count_{_i}")(count_bound)

# The bound counter again, fed by restate-stream's consumer (`delivery: consumer`): one
# handler per round, since each round's binding has its own group and two bindings may not
# deliver one topic to one handler.
consumer_counter = restate.VirtualObject("BenchConsumerCounter")
CONSUMER_HANDLERS = 16

for _i in range(CONSUMER_HANDLERS):
    consumer_counter.handler(name=f"count_{_i}")(count_bound)


async def look(ctx: restate.ObjectSharedContext, event: KafkaEvent[dict[str, Any]]) -> None:
    """A shared handler keeps no high-water (it cannot write state): consumer delivery sends
    its records with idempotency keys (benchmarks/idempotency_soak.py --target shared)."""


consumer_counter.handler(name="look", kind="shared")(look)


batch_counter = restate.VirtualObject("BenchBatchCounter")
BATCH_HANDLERS = 16


async def count_batch(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + len(events))


async def count_values(ctx: restate.ObjectContext, values: list[dict[str, Any]]) -> None:
    """The same count from the values alone (`values: list[T]`: no event per record)."""
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + len(values))


for _i in range(BATCH_HANDLERS):
    batch_counter.handler(name=f"count_{_i}")(count_batch)
    batch_counter.handler(name=f"values_{_i}")(count_values)


# Latency: per record, milliseconds from its Kafka timestamp (set when produced) to the
# handler's run; the state write commits with the invocation right after. Each invocation
# writes its own samples (one state entry named by its first offset), so the cost per
# invocation does not grow with the samples kept.
latency = restate.VirtualObject("BenchBatchLatency")
LATENCY_HANDLERS = 16


async def record_latency(
    ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]
) -> None:
    now_ms = time.time() * 1000
    samples: list[int] = []
    for event in events:
        ts = event.coordinates.timestamp
        if ts is not None and not event.value.get("warmup"):
            samples.append(round(now_ms - ts.timestamp() * 1000))
    if samples:
        first = events[0]
        ctx.set(f"lat/{first.partition}/{first.offset}", samples)
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + len(events))


for _i in range(LATENCY_HANDLERS):
    latency.handler(name=f"latency_{_i}")(record_latency)


app = restate.app(
    [counter, bound_counter, consumer_counter, batch_counter, latency, minimal_bridge_counter]
)

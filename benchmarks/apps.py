"""The handlers the end-to-end benchmark drives: a keyed counter, one state write per record
(unbatched) or per batch of one key's records (batched; one handler per batched binding, as
each binding keeps its own high-water offsets)."""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent

counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def count(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + 1)


batch_counter = restate.VirtualObject("BenchBatchCounter")
BATCH_HANDLERS = 16


async def count_batch(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + len(events))


for _i in range(BATCH_HANDLERS):
    batch_counter.handler(name=f"count_{_i}")(count_batch)


app = restate.app([counter, batch_counter])

"""Batched bindings' objects for the e2e tests: each key keeps the sequence numbers it
applied, in order, so a lost, repeated or reordered record shows in its state (per key, or
per record key inside a source partition's object)."""

from __future__ import annotations

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Item(BaseModel):
    seq: int
    fail: str | None = None


batch_log = restate.VirtualObject("BatchLog")


@batch_log.handler()
async def on_items(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
    seqs: list[int] = await ctx.get("seqs") or []
    tags: list[str] = await ctx.get("tags") or []
    for event in events:
        if event.value.fail == "terminal":
            raise restate.TerminalError(f"item {event.value.seq} refused")
        seqs.append(event.value.seq)
        tags.extend(v.decode() for k, v in event.headers if k == "tag" and v is not None)
    ctx.set("seqs", seqs)
    if tags:
        ctx.set("tags", tags)


partition_log = restate.VirtualObject("PartitionLog")


@partition_log.handler()
async def on_partition(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
    """`per: partition`: one object per source partition, many record keys in a batch."""
    by_key: dict[str, list[int]] = await ctx.get("seqs_by_key") or {}
    for event in events:
        assert event.key is not None
        by_key.setdefault(event.key, []).append(event.value.seq)
    ctx.set("seqs_by_key", by_key)


values_log = restate.VirtualObject("ValuesLog")


@values_log.handler()
async def on_values(ctx: restate.ObjectContext, values: list[dict[str, int]]) -> None:
    """The values alone (no events): a body past the high-water reaches it as parsed."""
    seqs: list[int] = await ctx.get("seqs") or []
    seqs.extend(value["seq"] for value in values)
    ctx.set("seqs", seqs)


app = restate.app([batch_log, partition_log, values_log])

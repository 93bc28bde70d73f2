"""A batched binding's object for the e2e tests: each key keeps the sequence numbers it
applied, in order, so a lost, repeated or reordered record shows in its state."""

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


app = restate.app([batch_log])

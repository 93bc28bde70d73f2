"""A per-record bound object for the delivery matrix (tests/integration/test_consumer_delivery.py):
each key keeps the sequence numbers it applied, in order, so a lost, repeated or reordered record
shows in its state; a tombstone is remembered as a deletion; record headers as tags."""

from __future__ import annotations

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Item(BaseModel):
    seq: int


record_log = restate.VirtualObject("RecordLog")


@record_log.handler()
async def on_item(ctx: restate.ObjectContext, event: KafkaEvent[Item | None]) -> None:
    if event.value is None:
        ctx.set("deleted", event.offset)
        return
    seqs: list[int] = await ctx.get("seqs") or []
    seqs.append(event.value.seq)
    ctx.set("seqs", seqs)
    tags = [v.decode() for k, v in event.headers if k == "tag" and v is not None]
    if tags:
        ctx.set("tags", [*(await ctx.get("tags") or []), *tags])


app = restate.app([record_log])

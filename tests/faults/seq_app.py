"""Objects for the fault suite: each key keeps the sequence numbers it applied, in order, so a
lost or doubled record shows in its state. SeqLog is fed one record per invocation by a Restate
subscription; BatchLog (tests/integration/batch_app.py) by a batched binding."""

from __future__ import annotations

import restate

from restate_stream.runtime.event import KafkaEvent
from tests.integration.batch_app import Item, batch_log

seq_log = restate.VirtualObject("SeqLog")


@seq_log.handler()
async def on_item(ctx: restate.ObjectContext, event: KafkaEvent[Item]) -> None:
    seqs: list[int] = await ctx.get("seqs") or []
    seqs.append(event.value.seq)
    ctx.set("seqs", seqs)


app = restate.app([seq_log, batch_log])

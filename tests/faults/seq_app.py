"""Objects for the fault suite: each key keeps the sequence numbers it applied, in order, so a
lost or doubled record shows in its state, and publishes each record it applies with the
durable publisher, so a lost or doubled publish shows on the output topic. SeqLog is fed one
record per invocation by a Restate subscription; SeqBatch a list by a batched binding.

FAULTS_BOOTSTRAP and FAULTS_OUT (the output topic) come from the case that starts the worker.
"""

from __future__ import annotations

import os
from functools import cache

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Outgoing, Publisher

BOOTSTRAP_ENV, OUT_ENV = "FAULTS_BOOTSTRAP", "FAULTS_OUT"


class Item(BaseModel):
    seq: int


@cache
def publisher() -> Publisher:
    return Publisher({"bootstrap.servers": os.environ[BOOTSTRAP_ENV]}, source="faults")


def out_topic() -> str:
    return os.environ[OUT_ENV]


seq_log = restate.VirtualObject("SeqLog")


@seq_log.handler()
async def on_item(ctx: restate.ObjectContext, event: KafkaEvent[Item]) -> None:
    await publisher().publish(ctx, out_topic(), event.key, {"seq": event.value.seq})
    seqs: list[int] = await ctx.get("seqs") or []
    seqs.append(event.value.seq)
    ctx.set("seqs", seqs)


seq_batch = restate.VirtualObject("SeqBatch")


@seq_batch.handler()
async def on_items(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
    # One durable step for the batch: all its acks journaled together.
    out = out_topic()
    await publisher().publish_many(
        ctx, [Outgoing(out, e.key, {"seq": e.value.seq}) for e in events]
    )
    seqs: list[int] = await ctx.get("seqs") or []
    seqs.extend(e.value.seq for e in events)
    ctx.set("seqs", seqs)


app = restate.app([seq_log, seq_batch])

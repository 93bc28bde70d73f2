"""A batched binding's object for the operations e2e tests (status, dlq redrive): each key
keeps the sequence numbers it applied; `fail` makes a record refused (TerminalError) or
retried (RuntimeError) until the test sets FIXED, standing for a fixed and redeployed
handler. Served in the test's process, so the test can flip FIXED."""

from __future__ import annotations

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Item(BaseModel):
    seq: int
    fail: str | None = None


FIXED = {"value": False}

batch_ops = restate.VirtualObject("BatchOps")


@batch_ops.handler()
async def on_items(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
    seqs: list[int] = await ctx.get("seqs") or []
    for event in events:
        item = event.value
        if item.fail == "terminal" and not FIXED["value"]:
            raise restate.TerminalError(f"item {item.seq} refused")
        if item.fail == "retry" and not FIXED["value"]:
            raise RuntimeError(f"item {item.seq} not yet")
        seqs.append(item.seq)
    ctx.set("seqs", seqs)


# One object, two ways in: a binding switched between unbatched (`on_item`) and batched
# (`on_items`) appends to the same state, so a replayed or skipped record shows in it.
switch_log = restate.VirtualObject("SwitchLog")


@switch_log.handler()
async def on_item(ctx: restate.ObjectContext, event: KafkaEvent[Item]) -> None:
    seqs: list[int] = await ctx.get("seqs") or []
    ctx.set("seqs", [*seqs, event.value.seq])


@switch_log.handler(name="on_items")
async def on_switch_items(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
    seqs: list[int] = await ctx.get("seqs") or []
    ctx.set("seqs", seqs + [e.value.seq for e in events])


# Handlers that take deletes: a tombstone clears the key's list (state "u" when unbatched,
# "b" when batched, so two bindings of one topic do not share it).
deletable = restate.VirtualObject("Deletable")


@deletable.handler()
async def on_item_or_delete(ctx: restate.ObjectContext, event: KafkaEvent[Item | None]) -> None:
    seqs: list[int] = await ctx.get("u") or []
    ctx.set("u", [] if event.value is None else [*seqs, event.value.seq])


@deletable.handler()
async def on_items_or_deletes(
    ctx: restate.ObjectContext, events: list[KafkaEvent[Item | None]]
) -> None:
    seqs: list[int] = await ctx.get("b") or []
    for event in events:
        seqs = [] if event.value is None else [*seqs, event.value.seq]
    ctx.set("b", seqs)


app = restate.app([batch_ops, switch_log, deletable])

"""A bound counter for the metrics test: sums `n` per key and records which serving process
applied each record (so the test knows both processes served)."""

from __future__ import annotations

import os

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Tally(BaseModel):
    n: int


tally = restate.VirtualObject("MetricsTally")


@tally.handler()
async def add(ctx: restate.ObjectContext, event: KafkaEvent[Tally]) -> None:
    total: int = await ctx.get("total") or 0
    ctx.set("total", total + event.value.n)
    pids: list[int] = await ctx.get("pids") or []
    ctx.set("pids", [*pids, os.getpid()])


app = restate.app([tally])

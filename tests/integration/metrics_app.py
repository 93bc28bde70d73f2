"""A bound counter for the metrics test: sums `n` per key and records which serving process
applied each record (so the test knows both processes served)."""

from __future__ import annotations

import asyncio
import os

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Tally(BaseModel):
    n: int


tally = restate.VirtualObject("MetricsTally")


@tally.handler()
async def add(ctx: restate.ObjectContext, event: KafkaEvent[Tally]) -> None:
    # Held a moment so the 12 keys' invocations overlap: over HTTP/1.1 each one in flight then
    # needs a connection of its own, and a burst of connections reaches both serving processes
    # (fast invocations reused one or two connections, all in one process: a CI failure).
    await asyncio.sleep(0.05)
    total: int = await ctx.get("total") or 0
    ctx.set("total", total + event.value.n)
    pids: list[int] = await ctx.get("pids") or []
    ctx.set("pids", [*pids, os.getpid()])


app = restate.app([tally])

"""A bound handler for the dead-letter tests: typed JSON in, failures on demand."""

from __future__ import annotations

from dataclasses import dataclass

import restate

from restate_stream.runtime.event import KafkaEvent


@dataclass
class Order:
    id: int
    amount: int
    outcome: str = "ok"  # "ok" | "terminal" | "flaky"


sink = restate.VirtualObject("PoisonSink")


@sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[Order]) -> None:
    order = event.value
    if order.outcome == "terminal":
        raise restate.TerminalError(f"order {order.id} rejected")
    if order.outcome == "flaky":
        raise ConnectionError(f"downstream unavailable for order {order.id}")
    seen: list[list[int]] = await ctx.get("orders") or []
    seen.append([order.id, event.offset])
    ctx.set("orders", seen)


app = restate.app([sink])

"""A bound handler that keeps failing with a retryable error until the test says otherwise:
its key is stuck (the invocation backs off), which the dashboard shows."""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent

STUCK = True  # the app runs in-process; the test clears it

sink = restate.VirtualObject("StuckSink")


@sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    if STUCK:
        raise LookupError(f"customer {event.value['customer']} not found")
    done: list[int] = await ctx.get("done") or []
    done.append(event.value["id"])
    ctx.set("done", done)

"""A bound handler for the dedupe tests: records each event id it processed, in order;
poison records fail terminally while the test says so (the app runs in-process)."""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent

POISON_FAILS = True

sink = restate.VirtualObject("DedupeSink")


@sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    if event.value.get("poison") and POISON_FAILS:
        raise restate.TerminalError(f"event {event.event_id} is poison")
    seen: list[str | None] = await ctx.get("seen") or []
    seen.append(event.event_id)
    ctx.set("seen", seen)


app = restate.app([sink])

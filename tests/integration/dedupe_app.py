"""A bound handler for the dedupe tests: records each event id it processed, in order;
poison records fail terminally while the test says so (the app runs in-process). A record
without an event id (no dedupe) carrying `legacy_window` writes the window as the versions
before one entry per id kept it, as one list: what an upgraded object starts with."""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.bound import LEGACY_DEDUPE_STATE
from restate_stream.runtime.event import KafkaEvent

POISON_FAILS = True

sink = restate.VirtualObject("DedupeSink")


@sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    if event.event_id is None and "legacy_window" in event.value:
        ctx.set(LEGACY_DEDUPE_STATE, event.value["legacy_window"])
        return
    if event.value.get("poison") and POISON_FAILS:
        raise restate.TerminalError(f"event {event.event_id} is poison")
    seen: list[str | None] = await ctx.get("seen") or []
    seen.append(event.event_id)
    ctx.set("seen", seen)


app = restate.app([sink])

"""A bound handler for the kill-while-dead-lettering test: poison records fail terminally.

Its only publish is the dead letter, so RESTATE_STREAM_FAULT=after-publish-ack kills the
worker right after the broker acknowledged the dead letter, before Restate journaled it.
"""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent

sink = restate.VirtualObject("DeadLetterCrashSink")


@sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    if event.value.get("poison"):
        raise restate.TerminalError(f"record {event.value['n']} is poison")
    seen: list[int] = await ctx.get("seen") or []
    seen.append(event.value["n"])
    ctx.set("seen", seen)


app = restate.app([sink])

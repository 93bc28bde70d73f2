"""A bound handler for the redrive tests: poison records fail until the test says otherwise."""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent

# Records marked poison fail while this is set; the test clears it (the app runs in-process).
POISON_FAILS = True

sink = restate.VirtualObject("RedriveSink")


@sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    record = event.value
    if record.get("poison") and POISON_FAILS:
        raise restate.TerminalError(f"record {record['id']} is poison")
    # Where the handler was told the record came from: redrive must pass the original.
    seen: list[list[Any]] = await ctx.get("seen") or []
    seen.append([record["id"], event.topic, event.partition, event.offset])
    ctx.set("seen", seen)


app = restate.app([sink])

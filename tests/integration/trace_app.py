"""Two bound handlers for the trace test: TraceRelay (bound to the source topic) publishes
each event durably to the relay topic; TraceSink (bound to that topic) keeps what it got."""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Publisher

# Set by the test to its broker before the first record arrives.
publisher = Publisher({"bootstrap.servers": "127.0.0.1:9"})
relay_topic = {"name": ""}

relay = restate.VirtualObject("TraceRelay")
sink = restate.VirtualObject("TraceSink")


@relay.handler()
async def forward(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await publisher.publish(ctx, relay_topic["name"], event.key, event.value)


@sink.handler()
async def keep(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    got: list[int] = await ctx.get("got") or []
    ctx.set("got", [*got, event.value["seq"]])


app = restate.app([relay, sink])

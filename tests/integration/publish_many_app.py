"""Apps for the publish_many tests: a bound relay that publishes a batch per record, and two
consumers of what it publishes (one with `dedupe: true`).

MANY_BOOTSTRAP and MANY_OUT come from the test; RESTATE_STREAM_FAULT makes the worker SIGKILL
itself right after the broker acknowledged the whole batch (restate_stream.runtime.publisher).
"""

from __future__ import annotations

import os
from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Outgoing, Publisher

publisher = Publisher({"bootstrap.servers": os.environ.get("MANY_BOOTSTRAP", "127.0.0.1:9092")})
relay = restate.VirtualObject("ManyRelay")
KEYS = 3  # the relay spreads a batch over this many output keys


@relay.handler()
async def fan_out(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    """Publish `n` records for one input record, in one durable step; keep what was acked."""
    out = os.environ.get("MANY_OUT", "many-out")
    batch = [
        Outgoing(out, f"{event.key}-{i % KEYS}", {"source": event.key, "i": i})
        for i in range(event.value["n"])
    ]
    published = await publisher.publish_many(ctx, batch)
    ctx.set("published", [[p.topic, p.partition, p.offset, p.event_id] for p in published])


async def _record(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    effects: list[int] = await ctx.get("effects") or []
    effects.append(event.value["i"])
    ctx.set("effects", effects)


deduped = restate.VirtualObject("ManyDeduped")
plain = restate.VirtualObject("ManyPlain")


@deduped.handler(name="record")
async def record_deduped(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await _record(ctx, event)


@plain.handler(name="record")
async def record_plain(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await _record(ctx, event)


app = restate.app([relay, deduped, plain])

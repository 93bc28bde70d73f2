"""Apps for the publisher crash-safety test: a publisher that can die on cue, two consumers.

CRASH_BOOTSTRAP and CRASH_TOPIC come from the test; RESTATE_STREAM_FAULT makes the worker
SIGKILL itself right after the broker acknowledged a publish (restate_stream.runtime.publisher).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Publisher

publisher = Publisher({"bootstrap.servers": os.environ.get("CRASH_BOOTSTRAP", "127.0.0.1:9092")})
emitter = restate.VirtualObject("CrashEmitter")


@emitter.handler()
async def emit(ctx: restate.ObjectContext, request: dict[str, Any]) -> None:
    published = await publisher.publish(
        ctx, os.environ.get("CRASH_TOPIC", "crash"), request["key"], {"n": request["n"]}
    )
    if os.environ.get("CRASH_AFTER_JOURNAL") == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # the publish is journaled: a replay skips it
    ctx.set("published", [published.partition, published.offset, published.event_id])


async def _count(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    effects: list[int] = await ctx.get("effects") or []
    effects.append(event.value["n"])
    ctx.set("effects", effects)


deduped = restate.VirtualObject("CrashDeduped")
plain = restate.VirtualObject("CrashPlain")


@deduped.handler(name="count")
async def count_deduped(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await _count(ctx, event)


@plain.handler(name="count")
async def count_plain(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await _count(ctx, event)


app = restate.app([emitter, deduped, plain])

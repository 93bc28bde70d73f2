"""Bound handlers for the format tests: Avro (both wires) and typed JSON (pydantic)."""

from __future__ import annotations

from typing import Any

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Payment(BaseModel):
    id: int
    amount_cents: int
    currency: str


sink = restate.VirtualObject("FormatSink")


async def _record(ctx: restate.ObjectContext, state: str, item: Any) -> None:
    items: list[Any] = await ctx.get(state) or []
    items.append(item)
    ctx.set(state, items)


@sink.handler()
async def avro_plain(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await _record(ctx, "avro_plain", event.value)


@sink.handler()
async def avro_confluent(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await _record(ctx, "avro_confluent", event.value)


@sink.handler()
async def typed_json(ctx: restate.ObjectContext, event: KafkaEvent[Payment]) -> None:
    assert isinstance(event.value, Payment)  # the declared type, not a dict
    await _record(ctx, "typed_json", event.value.model_dump() | {"offset": event.offset})


app = restate.app([sink])

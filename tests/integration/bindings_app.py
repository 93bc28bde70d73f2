"""The app the bindings tests declare in their YAML (`tests.integration.bindings_app:app`)."""

from __future__ import annotations

from typing import Any

import restate

log = restate.VirtualObject("BindingsLog")


async def _append(ctx: restate.ObjectContext, state: str, event: dict[str, Any]) -> None:
    seqs: list[int] = await ctx.get(state) or []
    seqs.append(event["seq"])
    ctx.set(state, seqs)


@log.handler()
async def record_a(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    await _append(ctx, "a", event)


@log.handler()
async def record_b(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    await _append(ctx, "b", event)


@log.handler()
async def record_or_fail(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    if event.get("fail"):
        raise RuntimeError(f"cannot handle {event['seq']} yet")  # retryable: the key is stuck
    await _append(ctx, "a", event)


app = restate.app([log])

# Served only part-way through a test, to make an apply fail in the middle.
late = restate.VirtualObject("BindingsLate")


@late.handler()
async def handle(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    ctx.set("last", event)


late_app = restate.app([late])

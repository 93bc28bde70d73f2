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


app = restate.app([log])

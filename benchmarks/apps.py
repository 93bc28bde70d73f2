"""The handler the end-to-end benchmark drives: a keyed counter, one state write per record."""

from __future__ import annotations

from typing import Any

import restate

counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def count(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + 1)


app = restate.app([counter])

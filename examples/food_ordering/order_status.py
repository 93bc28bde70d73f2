"""What a customer sees: one object per order with its status, driver and ETA.

The workflow writes the status (exclusive handlers, one writer at a time, in the order it
sends them); the delivery manager writes driver and ETA. Readers use the shared handlers,
which run concurrently with writers and with each other.
"""

from __future__ import annotations

from typing import TypedDict

import restate

from examples.food_ordering.model import StatusEntry, StatusView
from examples.food_ordering.settings import RETRY

status = restate.VirtualObject("order-status", invocation_retry_policy=RETRY)


class EtaUpdate(TypedDict):
    driver: str
    eta_s: float


@status.handler()
async def set_status(ctx: restate.ObjectContext, text: str) -> None:
    history: list[StatusEntry] = await ctx.get("history") or []
    history.append(StatusEntry(status=text, at=await ctx.time()))
    ctx.set("history", history)
    ctx.set("status", text)
    if text == "delivered" or text.startswith("cancelled"):
        ctx.clear("eta_s")


@status.handler()
async def set_eta(ctx: restate.ObjectContext, update: EtaUpdate) -> None:
    ctx.set("driver", update["driver"])
    ctx.set("eta_s", update["eta_s"])


@status.handler(kind="shared")
async def get_status(ctx: restate.ObjectSharedContext) -> StatusView:
    return StatusView(
        order_id=ctx.key(),
        status=await ctx.get("status"),
        driver=await ctx.get("driver"),
        eta_s=await ctx.get("eta_s"),
        history=await ctx.get("history") or [],
    )


@status.handler(kind="shared")
async def get_eta(ctx: restate.ObjectSharedContext) -> float | None:
    eta: float | None = await ctx.get("eta_s")
    return eta

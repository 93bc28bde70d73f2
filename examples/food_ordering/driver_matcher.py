"""Matches orders to free drivers, one object per region.

A delivery asks for a driver with an awakeable id; the matcher resolves it with a driver id
as soon as one is free (now, or when the next driver reports available). Requests and free
drivers queue first come, first served. Exclusive handlers make every match atomic, so a
request withdrawn after its timeout can never also get a driver.
"""

from __future__ import annotations

from typing import TypedDict

import restate

from examples.food_ordering.settings import RETRY

matcher = restate.VirtualObject("driver-matcher", invocation_retry_policy=RETRY)


class DriverRequest(TypedDict):
    order_id: str
    callback_id: str


class Pool(TypedDict):
    free_drivers: list[str]
    waiting: list[DriverRequest]


async def _pool(ctx: restate.ObjectContext | restate.ObjectSharedContext) -> Pool:
    return Pool(
        free_drivers=await ctx.get("free_drivers") or [],
        waiting=await ctx.get("waiting") or [],
    )


@matcher.handler()
async def driver_available(ctx: restate.ObjectContext, driver_id: str) -> None:
    pool = await _pool(ctx)
    if driver_id in pool["free_drivers"]:
        return
    if pool["waiting"]:
        request = pool["waiting"].pop(0)
        ctx.set("waiting", pool["waiting"])
        ctx.resolve_awakeable(request["callback_id"], driver_id)
        return
    ctx.set("free_drivers", [*pool["free_drivers"], driver_id])


@matcher.handler()
async def request_driver(ctx: restate.ObjectContext, request: DriverRequest) -> None:
    pool = await _pool(ctx)
    if pool["free_drivers"]:
        driver_id = pool["free_drivers"].pop(0)
        ctx.set("free_drivers", pool["free_drivers"])
        ctx.resolve_awakeable(request["callback_id"], driver_id)
        return
    ctx.set("waiting", [*pool["waiting"], request])


@matcher.handler()
async def withdraw(ctx: restate.ObjectContext, callback_id: str) -> bool:
    """Take back a request that waited too long; False if a driver was already given to it."""
    waiting: list[DriverRequest] = await ctx.get("waiting") or []
    left = [r for r in waiting if r["callback_id"] != callback_id]
    ctx.set("waiting", left)
    return len(left) < len(waiting)


@matcher.handler(kind="shared")
async def get_pool(ctx: restate.ObjectSharedContext) -> Pool:
    return await _pool(ctx)

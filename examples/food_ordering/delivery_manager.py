"""Delivery managers: one object per order, from asking for a driver to the doorstep.

`start` asks the region's matcher for a driver and waits on an awakeable, racing a durable
timer: no driver in time is a terminal failure the order workflow compensates. The twin
then forwards the driver's positions here (for the ETA) and reports pickup and drop-off,
which this object passes on to the workflow's durable promises.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

import restate

from examples.food_ordering import driver_matcher, driver_twin, geo, order_status, order_workflow
from examples.food_ordering.model import DeliveryJob, Point
from examples.food_ordering.settings import RETRY

NO_DRIVER = "no driver in time"

manager = restate.VirtualObject("delivery-manager", invocation_retry_policy=RETRY)


class DeliveryRequest(TypedDict):
    job: DeliveryJob
    driver_timeout_s: float


@manager.handler()
async def start(ctx: restate.ObjectContext, request: DeliveryRequest) -> str:
    """Find and assign a driver; returns the driver id or fails with "no driver in time"."""
    job = request["job"]
    ctx.set("job", job)
    ctx.set("picked_up", False)
    callback_id, driver = ctx.awakeable(type_hint=str)
    ask = driver_matcher.DriverRequest(order_id=job["order_id"], callback_id=callback_id)
    ctx.object_send(driver_matcher.request_driver, job["region"], ask)
    timeout = ctx.sleep(timedelta(seconds=request["driver_timeout_s"]))
    try:
        match await restate.select(driver=driver, timeout=timeout):
            case ["driver", driver_id]:
                pass
            case _:
                # The matcher may have picked a driver just now: withdraw tells us atomically.
                if await ctx.object_call(driver_matcher.withdraw, job["region"], callback_id):
                    ctx.clear("job")
                    raise restate.TerminalError(NO_DRIVER)
                driver_id = await driver
    except restate.TerminalError as exc:
        if exc.message != NO_DRIVER:
            # Cancelled while waiting: take the request back, or return the driver it got,
            # so no driver is left promised to an order that is gone.
            if not await ctx.object_call(driver_matcher.withdraw, job["region"], callback_id):
                ctx.object_send(driver_matcher.driver_available, job["region"], await driver)
            ctx.clear("job")
        raise
    await ctx.object_call(driver_twin.assign, driver_id, job)
    ctx.set("driver", driver_id)
    return str(driver_id)


@manager.handler()
async def driver_moved(ctx: restate.ObjectContext, here: Point) -> None:
    job: DeliveryJob | None = await ctx.get("job")
    driver: str | None = await ctx.get("driver")
    if job is None or driver is None:
        return
    has_food: bool | None = await ctx.get("picked_up")
    if has_food:
        eta = geo.eta_seconds((here, job["dropoff"]))
    else:
        eta = geo.eta_seconds((here, job["pickup"]), (job["pickup"], job["dropoff"]))
    update = order_status.EtaUpdate(driver=driver, eta_s=eta)
    ctx.object_send(order_status.set_eta, job["order_id"], update)


@manager.handler()
async def picked_up(ctx: restate.ObjectContext, driver_id: str) -> None:
    ctx.set("picked_up", True)
    ctx.workflow_send(order_workflow.picked_up, ctx.key(), driver_id)


@manager.handler()
async def delivered(ctx: restate.ObjectContext, driver_id: str) -> None:
    ctx.clear("job")
    ctx.workflow_send(order_workflow.delivered, ctx.key(), driver_id)

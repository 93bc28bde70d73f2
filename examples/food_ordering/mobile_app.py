"""Driver mobile-app simulators: one object per driver, standing in for the phone app.

Each phone loops with a delayed message to itself (`tick`), so the loop is durable: it
survives worker restarts and never runs twice at once. Every tick it checks for a job,
drives towards the restaurant or the customer, reports pickup and drop-off to the twin, and
publishes its GPS fix to Kafka with restate-stream's durable publisher (inside `ctx.run`,
with a sequence number), from where the twin consumes it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

import restate

from examples.food_ordering import driver_twin, geo
from examples.food_ordering.model import DeliveryJob, Location, Point
from examples.food_ordering.settings import DRIVER_UPDATES, RETRY, publisher

TICK = timedelta(milliseconds=500)
KM_PER_TICK = geo.SPEED_KM_S * TICK.total_seconds()
BREAK_AFTER_DELIVERY = timedelta(seconds=1)

phone = restate.VirtualObject("driver-mobile-app", invocation_retry_policy=RETRY)


class StartRequest(TypedDict):
    region: str
    position: Point


class PhoneView(TypedDict):
    driver_id: str
    running: bool
    position: Point | None
    seq: int
    job: DeliveryJob | None
    leg: str | None  # to-restaurant | to-customer


async def _publish(ctx: restate.ObjectContext, position: Point, speed: float = 0.0) -> None:
    last: int = await ctx.get("seq") or 0
    seq = last + 1
    ctx.set("seq", seq)
    fix = Location(driver_id=ctx.key(), seq=seq, x=position["x"], y=position["y"], speed_km_s=speed)
    await publisher().publish(ctx, DRIVER_UPDATES, ctx.key(), fix, event_type="driver.location")


@phone.handler()
async def start(ctx: restate.ObjectContext, request: StartRequest) -> None:
    running: bool | None = await ctx.get("running")
    if running:
        return
    ctx.set("running", True)
    ctx.set("region", request["region"])
    ctx.set("position", request["position"])
    # A new loop generation: a tick still pending from before a stop carries the old one
    # and ends there, so a quick stop/start never runs two loops.
    loop: int = (await ctx.get("loop", type_hint=int) or 0) + 1
    ctx.set("loop", loop)
    await _publish(ctx, request["position"])
    ctx.object_send(driver_twin.go_online, ctx.key(), request["region"])
    ctx.object_send(tick, ctx.key(), loop, send_delay=TICK)


@phone.handler()
async def stop(ctx: restate.ObjectContext) -> None:
    ctx.set("running", False)  # the pending tick sees it and ends the loop


@phone.handler()
async def tick(ctx: restate.ObjectContext, loop: int) -> None:
    running: bool | None = await ctx.get("running")
    position: Point | None = await ctx.get("position")
    current: int | None = await ctx.get("loop", type_hint=int)
    if not running or position is None or loop != current:
        return
    job: DeliveryJob | None = await ctx.get("job")
    before = position
    if job is None:
        job = await ctx.object_call(driver_twin.current_job, ctx.key(), None)
        if job is not None:
            ctx.set("job", job)
            ctx.set("leg", "to-restaurant")
    if job is not None:
        leg: str | None = await ctx.get("leg")
        target = job["pickup"] if leg == "to-restaurant" else job["dropoff"]
        position, arrived = geo.step_towards(position, target, KM_PER_TICK)
        ctx.set("position", position)
        if arrived and leg == "to-restaurant":
            ctx.set("leg", "to-customer")
            await ctx.object_call(driver_twin.picked_up, ctx.key(), None)
        elif arrived:
            ctx.clear("job")
            ctx.clear("leg")
            await ctx.object_call(driver_twin.delivered, ctx.key(), None)
            region: str = await ctx.get("region") or ""
            ctx.object_send(
                driver_twin.go_online, ctx.key(), region, send_delay=BREAK_AFTER_DELIVERY
            )
    # The next tick first: a publish that fails for good must not end the loop.
    ctx.object_send(tick, ctx.key(), loop, send_delay=TICK)
    await _publish(ctx, position, speed_km_s(before, position))


def speed_km_s(before: Point, after: Point) -> float:
    """The speed of one tick: the km driven in it over its simulated duration."""
    return round(geo.distance(before, after) / TICK.total_seconds(), 3)


@phone.handler(kind="shared")
async def get_phone(ctx: restate.ObjectSharedContext) -> PhoneView:
    return PhoneView(
        driver_id=ctx.key(),
        running=bool(await ctx.get("running")),
        position=await ctx.get("position"),
        seq=await ctx.get("seq") or 0,
        job=await ctx.get("job"),
        leg=await ctx.get("leg"),
    )

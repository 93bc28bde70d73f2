"""Driver digital twins: the backend's view of each driver, one object per driver id.

`handle_location` is bound to the `driver-updates` topic in bindings.yaml: restate-stream
decodes each record into a `Location` and hands it over with its Kafka coordinates. The
record key is the driver id, so one driver's fixes arrive in order at one twin. The twin
keeps the sequence numbers it saw (the tests check none is missing or out of order) and
forwards the position to the delivery it is working on, for the customer's ETA.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypedDict

import restate

from examples.food_ordering import delivery_manager, driver_matcher
from examples.food_ordering.model import DeliveryJob, Location, Point
from examples.food_ordering.settings import RETRY
from restate_stream.runtime.event import KafkaEvent

SEEN_KEPT = 5_000  # sequence numbers kept for inspection; a demo run sees a few hundred

twin = restate.VirtualObject("driver-digital-twin", invocation_retry_policy=RETRY)


class TwinView(TypedDict):
    driver_id: str
    state: str  # offline | available | delivering
    region: str | None
    job: DeliveryJob | None
    location: dict[str, Any] | None
    seen_seqs: list[int]
    last_kafka_offset: int | None


@twin.handler()
async def handle_location(ctx: restate.ObjectContext, event: KafkaEvent[Location]) -> None:
    fix = event.value
    seen: list[int] = await ctx.get("seen_seqs") or []
    ctx.set("seen_seqs", [*seen, fix.seq][-SEEN_KEPT:])
    ctx.set("last_kafka_offset", event.offset)
    ctx.set("location", asdict(fix))
    job: DeliveryJob | None = await ctx.get("job")
    if job is not None:
        here = Point(x=fix.x, y=fix.y)
        ctx.object_send(delivery_manager.driver_moved, job["order_id"], here)


@twin.handler()
async def go_online(ctx: restate.ObjectContext, region: str) -> None:
    state: str | None = await ctx.get("state")
    if state == "delivering":
        return  # finishes the job first; the phone reports again afterwards
    ctx.set("state", "available")
    ctx.set("region", region)
    ctx.object_send(driver_matcher.driver_available, region, ctx.key())


@twin.handler()
async def assign(ctx: restate.ObjectContext, job: DeliveryJob) -> None:
    state: str | None = await ctx.get("state")
    if state != "available":
        raise restate.TerminalError(f"driver {ctx.key()} cannot take a job while {state}")
    ctx.set("state", "delivering")
    ctx.set("job", job)


@twin.handler(kind="shared")
async def current_job(ctx: restate.ObjectSharedContext) -> DeliveryJob | None:
    job: DeliveryJob | None = await ctx.get("job")
    return job


@twin.handler()
async def picked_up(ctx: restate.ObjectContext) -> None:
    job: DeliveryJob | None = await ctx.get("job")
    if job is not None:
        ctx.object_send(delivery_manager.picked_up, job["order_id"], ctx.key())


@twin.handler()
async def delivered(ctx: restate.ObjectContext) -> None:
    job: DeliveryJob | None = await ctx.get("job")
    if job is not None:
        ctx.object_send(delivery_manager.delivered, job["order_id"], ctx.key())
    ctx.clear("job")
    ctx.set("state", "offline")  # until the phone says it is ready again


@twin.handler(kind="shared")
async def get_info(ctx: restate.ObjectSharedContext) -> TwinView:
    return TwinView(
        driver_id=ctx.key(),
        state=await ctx.get("state") or "offline",
        region=await ctx.get("region"),
        job=await ctx.get("job"),
        location=await ctx.get("location"),
        seen_seqs=await ctx.get("seen_seqs") or [],
        last_kafka_offset=await ctx.get("last_kafka_offset"),
    )

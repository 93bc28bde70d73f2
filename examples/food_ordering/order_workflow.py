"""The order workflow: one run per order id, pay → cook → deliver, as a saga.

Every step that completed registers how to undo it. When a later step fails terminally
(the card is declined, the restaurant rejects the order, no driver comes in time, or the
order is cancelled through Restate) the undos run in reverse order and the order ends
`cancelled: <reason>`. Undos retry until they succeed: a refund must not get lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import restate

from examples.food_ordering import delivery_manager, order_status, payments, restaurant
from examples.food_ordering.model import DeliveryJob, Order, Outcome, RestaurantRecord
from examples.food_ordering.settings import RESTAURANTS, RETRY
from restate_stream.tables import Table

KITCHEN_TIMEOUT = timedelta(seconds=60)

workflow = restate.Workflow("order-workflow", invocation_retry_policy=RETRY)
restaurant_table: Table[RestaurantRecord] = Table(RESTAURANTS, RestaurantRecord)

Undo = Callable[[], Awaitable[object]]


@workflow.main()
async def run(ctx: restate.WorkflowContext, order: Order) -> Outcome:
    order_id = ctx.key()
    undo: list[tuple[str, Undo]] = []

    async def status(text: str) -> None:
        # A call, not a send: the status is stored before the workflow moves on.
        await ctx.object_call(order_status.set_status, order_id, text)

    try:
        await status("placed")
        # The stream-table join: the restaurant's current record, as the `restaurants` table
        # binding keeps it from the directory's topic (a journaled call: a replay reads the
        # same record). It gives the pickup point; an unknown or closed restaurant cancels.
        place = await restaurant_table.get(ctx, order["restaurant"])
        if place is None:
            raise restate.TerminalError(f"unknown restaurant {order['restaurant']}")
        if not place["open"]:
            raise restate.TerminalError(f"{place['name']} is closed")
        # Drawn from Restate's deterministic random: the same id on every replay, so the
        # provider sees one payment however often the charge is retried.
        payment_id = f"pay_{ctx.uuid().hex[:12]}"
        # Registered before the charge: if the charge gives up after the provider booked it
        # (a timeout on our side), the refund still runs; refunding an uncharged payment
        # voids it instead.
        undo.append(
            (
                "refund payment",
                lambda: ctx.run_typed(
                    "refund payment",
                    payments.refund_card,
                    payments.REFUND_RETRY,
                    order_id,
                    payment_id,
                ),
            )
        )
        await ctx.run_typed(
            "charge card",
            payments.charge_card,
            payments.CHARGE_RETRY,
            order_id,
            payment_id,
            order["total_cents"],
        )
        await status("paid")

        callback_id, food_ready = ctx.awakeable(type_hint=dict)
        ticket = restaurant.PrepareRequest(
            order_id=order_id, items=order["items"], callback_id=callback_id
        )
        ctx.object_send(restaurant.prepare, order["restaurant"], ticket)
        await status(f"in preparation at {order['restaurant']}")
        try:
            answer = await restate.select(ready=food_ready, timeout=ctx.sleep(KITCHEN_TIMEOUT))
        except restate.TerminalError as exc:  # the kitchen rejected the awakeable
            raise restate.TerminalError(f"restaurant rejected the order: {exc.message}") from exc
        if answer[0] == "timeout":
            await ctx.object_call(restaurant.cancel, order["restaurant"], order_id)
            raise restate.TerminalError("the restaurant did not answer in time")
        undo.append(
            (
                "cancel kitchen ticket",
                lambda: ctx.object_call(restaurant.cancel, order["restaurant"], order_id),
            )
        )

        await status("ready, looking for a driver")
        job = DeliveryJob(
            order_id=order_id,
            region=order["region"],
            restaurant=order["restaurant"],
            pickup=place["position"],
            dropoff=order["address"],
        )
        request = delivery_manager.DeliveryRequest(
            job=job, driver_timeout_s=order["driver_timeout_s"]
        )
        driver = await ctx.object_call(delivery_manager.start, order_id, request)
        await status(f"driver {driver} on the way to {order['restaurant']}")
        await ctx.promise("picked-up", type_hint=str).value()
        await status(f"out for delivery with {driver}")
        await ctx.promise("delivered", type_hint=str).value()
        await status("delivered")
        return Outcome(order_id=order_id, outcome="delivered", reason=None, driver=driver)
    except restate.TerminalError as exc:
        for name, step in reversed(undo):
            await status(f"cancelling: {name}")
            try:
                await step()
            except restate.TerminalError as failed:
                # One undo failing for good must not skip the others.
                await status(f"cancelling: {name} failed: {failed.message}")
        await status(f"cancelled: {exc.message}")
        return Outcome(order_id=order_id, outcome="cancelled", reason=exc.message, driver=None)


@workflow.handler()
async def picked_up(ctx: restate.WorkflowSharedContext, driver_id: str) -> None:
    await ctx.promise("picked-up", type_hint=str).resolve(driver_id)


@workflow.handler()
async def delivered(ctx: restate.WorkflowSharedContext, driver_id: str) -> None:
    await ctx.promise("delivered", type_hint=str).resolve(driver_id)

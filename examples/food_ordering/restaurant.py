"""The restaurants' point-of-sale simulator: cooks an order, then calls the workflow back.

The order workflow hands the kitchen an awakeable id. The kitchen answers like an outside
system would: through Restate's ingress, `POST /restate/awakeables/{id}/resolve` when the
food is ready or `/reject` with the reason it cannot cook the order. Cooking time is a
delayed message to itself, so the kitchen object is never blocked while food is cooking.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

import restate
from restate import RunOptions

from examples.food_ordering import ingress
from examples.food_ordering.model import Item
from examples.food_ordering.settings import RETRY

SOLD_OUT = {"fugu sashimi"}
COOK_BASE_S = 2.0
COOK_PER_ITEM_S = 0.5
CHECK_STOCK_S = 0.5  # how long before the kitchen notices it cannot cook something

# Callbacks must reach the workflow; retry until they do.
CALLBACK_RETRY: RunOptions[None] = RunOptions(
    initial_retry_interval=timedelta(milliseconds=200),
    max_retry_interval=timedelta(seconds=5),
)

pos = restate.VirtualObject("restaurant-pos", invocation_retry_policy=RETRY)


class PrepareRequest(TypedDict):
    order_id: str
    items: list[Item]
    callback_id: str


class Ticket(TypedDict):
    order_id: str
    callback_id: str
    status: str  # cooking | ready | rejecting | rejected | cancelled
    reason: str | None


async def _tickets(ctx: restate.ObjectContext) -> dict[str, Ticket]:
    return await ctx.get("tickets") or {}


@pos.handler()
async def prepare(ctx: restate.ObjectContext, request: PrepareRequest) -> None:
    tickets = await _tickets(ctx)
    if request["order_id"] in tickets:
        return  # the same order sent twice: one ticket
    missing = sorted({i["name"] for i in request["items"]} & SOLD_OUT)
    if missing:
        reason = f"{', '.join(missing)} sold out at {ctx.key()}"
        status, delay = "rejecting", CHECK_STOCK_S
    else:
        count = sum(i["quantity"] for i in request["items"])
        reason, status, delay = None, "cooking", COOK_BASE_S + COOK_PER_ITEM_S * count
    tickets[request["order_id"]] = Ticket(
        order_id=request["order_id"],
        callback_id=request["callback_id"],
        status=status,
        reason=reason,
    )
    ctx.set("tickets", tickets)
    ctx.object_send(finish, ctx.key(), request["order_id"], send_delay=timedelta(seconds=delay))


@pos.handler()
async def finish(ctx: restate.ObjectContext, order_id: str) -> None:
    tickets = await _tickets(ctx)
    ticket = tickets.get(order_id)
    if ticket is None or ticket["status"] not in ("cooking", "rejecting"):
        return
    callback = f"/restate/awakeables/{ticket['callback_id']}"
    if ticket["status"] == "rejecting":
        ticket["status"] = "rejected"
        await ctx.run_typed(
            "reject callback", _post, CALLBACK_RETRY, f"{callback}/reject", ticket["reason"]
        )
    else:
        ticket["status"] = "ready"
        await ctx.run_typed("ready callback", _post, CALLBACK_RETRY, f"{callback}/resolve", None)
    ctx.set("tickets", tickets)


@pos.handler()
async def cancel(ctx: restate.ObjectContext, order_id: str) -> None:
    """Compensation: the order was cancelled after the kitchen took it; bin the ticket."""
    tickets = await _tickets(ctx)
    if order_id in tickets and tickets[order_id]["status"] != "rejected":
        tickets[order_id]["status"] = "cancelled"
        ctx.set("tickets", tickets)


@pos.handler(kind="shared")
async def get_tickets(ctx: restate.ObjectSharedContext) -> dict[str, Ticket]:
    return await ctx.get("tickets") or {}


async def _post(path: str, reason: str | None) -> None:
    if reason is None:
        await ingress.post(path, json={"ready": True})
    else:
        await ingress.post(path, text=reason)

"""The order API: checkout turns a cart into an order and starts its workflow.

Clients call it through Restate's ingress with an `idempotency-key` header (one key per
checkout). Restate runs the handler once per key and answers a repeated request with the
first result, so a retried or double-clicked checkout yields the same order id and one
workflow. (Restate refuses idempotency keys on workflow handlers themselves: a workflow is
already once-per-key, but the key is the order id, which the client does not have yet.)

Each checkout is also published to the `orders` topic, keyed by restaurant, with the durable
publisher (inside `ctx.run`, so a retried checkout does not publish twice): the
orders-per-restaurant window binding counts them.
"""

from __future__ import annotations

from typing import TypedDict

import restate

from examples.food_ordering import order_workflow
from examples.food_ordering.model import Cart, Order, OrderPlaced
from examples.food_ordering.settings import ORDERS, RETRY, publisher

api = restate.Service("order-api", invocation_retry_policy=RETRY)


class Placed(TypedDict):
    order_id: str


@api.handler()
async def place_order(ctx: restate.Context, cart: Cart) -> Placed:
    order_id = f"order-{ctx.uuid().hex[:8]}"  # deterministic: a replay makes the same id
    order = Order(id=order_id, **cart)
    placed = OrderPlaced(
        order_id=order_id,
        restaurant=cart["restaurant"],
        customer=cart["customer"],
        total_cents=cart["total_cents"],
    )
    await publisher("food-ordering/checkout").publish(
        ctx, ORDERS, cart["restaurant"], placed, event_type="order.placed"
    )
    ctx.workflow_send(order_workflow.run, order_id, order)
    return Placed(order_id=order_id)

"""Tables: a topic materialised as the last value per key, read by key from any handler.

restaurants = Table("restaurants", Restaurant)   # the table binding's name, the value type

@orders.handler()
async def on_order(ctx: restate.ObjectContext, order: Order) -> None:
    restaurant = await restaurants.get(ctx, order.restaurant_id)   # Restaurant | None
"""

import restate_stream.bindings  # noqa: F401  (first: its schema imports tables.settings)
from restate_stream.tables.reader import Table

__all__ = ["Table"]

"""The worker's Restate app: every service of the food-ordering example."""

from __future__ import annotations

import restate

from examples.food_ordering import (
    delivery_manager,
    driver_matcher,
    driver_twin,
    mobile_app,
    order_api,
    order_status,
    order_workflow,
    payments,
    restaurant,
)

services: list[restate.Service | restate.VirtualObject | restate.Workflow] = [
    order_api.api,
    order_workflow.workflow,
    order_status.status,
    payments.provider,
    restaurant.pos,
    delivery_manager.manager,
    driver_matcher.matcher,
    driver_twin.twin,
    mobile_app.phone,
]

app = restate.app(services)

"""Talking to the food-ordering app from outside, through Restate's HTTP ingress.

Calls go through the SDK's own ingress client, `restate.create_client`: it takes the handler
function itself (so the service name, the key and the serdes come from its declaration) and an
idempotency key where one is wanted. Orders are placed with one: a customer's app that
retries "place order" after a timeout (or a double click) gets the first submission's answer
back instead of a second order. The workflow itself also runs at most once per order id.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType

import httpx
import restate

from examples.food_ordering import (
    driver_matcher,
    driver_twin,
    mobile_app,
    order_api,
    order_status,
    payments,
    restaurant,
)
from examples.food_ordering.driver_matcher import Pool
from examples.food_ordering.driver_twin import TwinView
from examples.food_ordering.mobile_app import PhoneView, StartRequest
from examples.food_ordering.model import (
    Cart,
    Ledger,
    Outcome,
    Point,
    RestaurantRecord,
    StatusView,
)
from examples.food_ordering.restaurant import Ticket
from examples.food_ordering.settings import RESTAURANTS


class FoodClient:
    def __init__(self, ingress_url: str, *, timeout: float = 30.0) -> None:
        self._url = ingress_url.rstrip("/")
        self._timeout = timeout
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> FoodClient:
        self._restate = await self._stack.enter_async_context(restate.create_client(self._url))
        # Waiting for a workflow's result (attaching) is not in the SDK client: plain HTTP.
        self._http = await self._stack.enter_async_context(
            httpx.AsyncClient(base_url=self._url, timeout=self._timeout)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def place_order(self, cart: Cart, idempotency_key: str) -> str:
        """Check out `cart`; the same idempotency key always gives back the same order id."""
        placed = await self._restate.service_call(
            order_api.place_order, cart, idempotency_key=idempotency_key
        )
        return placed["order_id"]

    async def outcome(self, order_id: str) -> Outcome:
        """Wait for the workflow to finish and return how the order ended."""
        response = await self._http.get(f"/restate/workflow/order-workflow/{order_id}/output")
        response.raise_for_status()
        result: Outcome = response.json()
        return result

    async def status(self, order_id: str) -> StatusView:
        return await self._restate.object_call(order_status.get_status, order_id, None)

    async def eta(self, order_id: str) -> float | None:
        return await self._restate.object_call(order_status.get_eta, order_id, None)

    async def ledger(self, order_id: str) -> Ledger:
        return await self._restate.object_call(payments.ledger, order_id, None)

    async def start_driver(self, driver_id: str, region: str, position: Point) -> None:
        request = StartRequest(region=region, position=position)
        await self._restate.object_call(mobile_app.start, driver_id, request)

    async def stop_driver(self, driver_id: str) -> None:
        await self._restate.object_call(mobile_app.stop, driver_id, None)

    async def phone(self, driver_id: str) -> PhoneView:
        return await self._restate.object_call(mobile_app.get_phone, driver_id, None)

    async def kitchen(self, restaurant_id: str) -> dict[str, Ticket]:
        return await self._restate.object_call(restaurant.get_tickets, restaurant_id, None)

    async def driver_pool(self, region: str) -> Pool:
        return await self._restate.object_call(driver_matcher.get_pool, region, None)

    async def twin(self, driver_id: str) -> TwinView:
        return await self._restate.object_call(driver_twin.get_info, driver_id, None)

    async def restaurant(self, restaurant_id: str) -> RestaurantRecord | None:
        """The restaurant's current record in the `restaurants` table (its shared `get`)."""
        response = await self._http.post(f"/{RESTAURANTS}/{restaurant_id}/get")
        response.raise_for_status()
        found: RestaurantRecord | None = response.json() if response.content else None
        return found

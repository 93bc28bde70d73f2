"""Talking to the food-ordering app from outside, through Restate's HTTP ingress.

Orders are placed with an idempotency key: a customer's app that retries "place order"
after a timeout (or a double click) gets the first submission's answer back instead of a
second order. The workflow itself also runs at most once per order id.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from examples.food_ordering.driver_matcher import Pool
from examples.food_ordering.driver_twin import TwinView
from examples.food_ordering.mobile_app import PhoneView, StartRequest
from examples.food_ordering.model import Cart, Ledger, Outcome, Point, StatusView
from examples.food_ordering.restaurant import Ticket


class FoodClient:
    def __init__(self, ingress_url: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(base_url=ingress_url.rstrip("/"), timeout=timeout)

    async def __aenter__(self) -> FoodClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def _call(self, path: str, body: Any = None, **headers: str) -> Any:
        response = await self._http.post(path, json=body, headers=headers)
        response.raise_for_status()
        return response.json() if response.content else None

    async def place_order(self, cart: Cart, idempotency_key: str) -> str:
        """Check out `cart`; the same idempotency key always gives back the same order id."""
        placed = await self._call(
            "/order-api/place_order", cart, **{"idempotency-key": idempotency_key}
        )
        return str(placed["order_id"])

    async def outcome(self, order_id: str) -> Outcome:
        """Wait for the workflow to finish and return how the order ended."""
        response = await self._http.get(f"/restate/workflow/order-workflow/{order_id}/output")
        response.raise_for_status()
        result: Outcome = response.json()
        return result

    async def status(self, order_id: str) -> StatusView:
        view: StatusView = await self._call(f"/order-status/{order_id}/get_status")
        return view

    async def eta(self, order_id: str) -> float | None:
        eta: float | None = await self._call(f"/order-status/{order_id}/get_eta")
        return eta

    async def ledger(self, order_id: str) -> Ledger:
        book: Ledger = await self._call(f"/payment-provider/{order_id}/ledger")
        return book

    async def start_driver(self, driver_id: str, region: str, position: Point) -> None:
        request = StartRequest(region=region, position=position)
        await self._call(f"/driver-mobile-app/{driver_id}/start", request)

    async def stop_driver(self, driver_id: str) -> None:
        await self._call(f"/driver-mobile-app/{driver_id}/stop")

    async def phone(self, driver_id: str) -> PhoneView:
        view: PhoneView = await self._call(f"/driver-mobile-app/{driver_id}/get_phone")
        return view

    async def kitchen(self, restaurant: str) -> dict[str, Ticket]:
        tickets: dict[str, Ticket] = await self._call(f"/restaurant-pos/{restaurant}/get_tickets")
        return tickets

    async def driver_pool(self, region: str) -> Pool:
        pool: Pool = await self._call(f"/driver-matcher/{region}/get_pool")
        return pool

    async def twin(self, driver_id: str) -> TwinView:
        view: TwinView = await self._call(f"/driver-digital-twin/{driver_id}/get_info")
        return view

"""Watching the demo: every stage each order goes through, and the drivers as they move.

Everything shown is read through Restate's ingress, from the same shared handlers a
customer's or dispatcher's app would call (order-status/get_status, driver-mobile-app/
get_phone), while the system runs. Stages come from the order's status history, stamped
when they happened, so none is missed between two polls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from examples.food_ordering.client import FoodClient
from examples.food_ordering.mobile_app import PhoneView
from examples.food_ordering.model import StatusView
from restate_stream._util.poll import PollTimeout, apoll

DRIVER_LINE_EVERY_S = 1.5


def finished(status: str | None) -> bool:
    return status is not None and (status == "delivered" or status.startswith("cancelled"))


@dataclass
class Tracked:
    order_id: str
    customer: str
    placed_at: float  # unix seconds, like the status history's stamps
    status: str | None = None
    driver: str | None = None
    finished_at: float | None = None
    stages_seen: int = 0


class Watcher:
    def __init__(
        self,
        client: FoodClient,
        orders: list[Tracked],
        drivers: list[str],
        *,
        out: Callable[[str], None] = print,
        started: float | None = None,
    ) -> None:
        self.client = client
        self.orders = {o.order_id: o for o in orders}
        self.drivers = drivers
        self.out = out
        self.started = started if started is not None else time.time()
        self._last_driver_line = ""
        self._driver_line_at = 0.0

    def _say(self, what: str, at: float | None = None) -> None:
        self.out(f"  {(at or time.time()) - self.started:6.1f}s  {what}")

    @property
    def done(self) -> bool:
        return all(o.finished_at is not None for o in self.orders.values())

    async def poll(self) -> None:
        views: list[StatusView] = await asyncio.gather(
            *(self.client.status(order_id) for order_id in self.orders)
        )
        stages: list[tuple[float, str]] = []
        for view in views:
            tracked = self.orders[view["order_id"]]
            tracked.driver = view["driver"] or tracked.driver
            for entry in view["history"][tracked.stages_seen :]:
                tracked.status = entry["status"]
                stages.append(
                    (entry["at"], f"{tracked.order_id}  {tracked.customer:<5} {entry['status']}")
                )
                if finished(tracked.status):
                    tracked.finished_at = entry["at"]
            tracked.stages_seen = len(view["history"])
        for at, line in sorted(stages):
            self._say(line, at)
        if time.monotonic() - self._driver_line_at >= DRIVER_LINE_EVERY_S:
            phones: list[PhoneView] = await asyncio.gather(
                *(self.client.phone(d) for d in self.drivers)
            )
            line = " | ".join(self._describe(p, views) for p in phones)
            if line != self._last_driver_line:
                self._say(f"drivers  {line}")
                self._last_driver_line = line
            self._driver_line_at = time.monotonic()

    def _describe(self, phone: PhoneView, views: list[StatusView]) -> str:
        where = phone["position"]
        at = f"({where['x']:.1f},{where['y']:.1f})" if where else "(?)"
        job = phone["job"]
        if job is None:
            return f"{phone['driver_id']} {at} free"
        eta = next((v["eta_s"] for v in views if v["order_id"] == job["order_id"]), None)
        eta_text = f", ETA {eta:.0f}s" if eta is not None else ""
        target = job["restaurant"] if phone["leg"] == "to-restaurant" else "customer"
        return f"{phone['driver_id']} {at} -> {target} ({job['order_id']}{eta_text})"

    async def run(self, deadline_s: float, interval_s: float = 0.25) -> bool:
        """Poll until every order finished (True) or the deadline passed (False)."""

        async def all_done() -> bool:
            await self.poll()
            return self.done

        try:
            await apoll(
                all_done, what="every order to finish", timeout=deadline_s, interval=interval_s
            )
        except PollTimeout:
            return False
        return True

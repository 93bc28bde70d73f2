"""The data the services exchange: JSON-shaped TypedDicts, plus the Kafka location event.

Handler inputs and outputs are plain JSON (TypedDicts) so the SDK needs no optional serde
packages; the Kafka event is a dataclass, which restate-stream's bound handler decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired

# pydantic (the table reader's decoder) needs typing_extensions' TypedDict before Python 3.12.
from typing_extensions import TypedDict


class Point(TypedDict):
    """A place on the simulated city grid, in km."""

    x: float
    y: float


class Item(TypedDict):
    name: str
    quantity: int
    price_cents: int


class Cart(TypedDict):
    """What a customer checks out; the order API turns it into an Order with an id."""

    customer: str
    restaurant: str
    region: str
    address: Point
    items: list[Item]
    total_cents: int
    # How long delivery may wait for a free driver before the order is cancelled.
    driver_timeout_s: float


class Order(Cart):
    id: str


class Outcome(TypedDict):
    order_id: str
    outcome: str  # "delivered" | "cancelled"
    reason: str | None
    driver: str | None


class Receipt(TypedDict):
    payment_id: str
    order_id: str
    amount_cents: int


class Ledger(TypedDict):
    """What the payment provider did for one order: every charge and refund it booked."""

    charges: list[Receipt]
    refunds: list[Receipt]
    # Payments refunded before any charge arrived: a late charge for them is refused.
    voided: NotRequired[list[str]]


class DeliveryJob(TypedDict):
    order_id: str
    region: str
    restaurant: str
    pickup: Point
    dropoff: Point


class StatusEntry(TypedDict):
    status: str
    at: float  # unix seconds


class StatusView(TypedDict):
    order_id: str
    status: str | None
    driver: str | None
    eta_s: float | None
    history: list[StatusEntry]


@dataclass(frozen=True)
class Location:
    """A driver's GPS fix as the phone publishes it to `driver-updates` (keyed by driver id)."""

    driver_id: str
    seq: int  # per driver, from 1, no gaps: lets the twin prove it saw every fix in order
    x: float
    y: float
    # km driven since the previous fix over the tick between them (the simulation's clock):
    # what the driver-speed window averages. 0 while waiting for a job.
    speed_km_s: float = 0.0


class RestaurantRecord(TypedDict):
    """A restaurant's current record on `restaurants` (keyed by restaurant id), as the
    restaurant directory publishes it; the `restaurants` table binding keeps the latest."""

    name: str
    position: Point
    open: bool


class OrderPlaced(TypedDict):
    """What checkout publishes to `orders`, keyed by restaurant id: the records the
    orders-per-restaurant window counts."""

    order_id: str
    restaurant: str
    customer: str
    total_cents: int

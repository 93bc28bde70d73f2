"""The demo's customers, carts and drivers: deterministic, so every run tells the same story."""

from __future__ import annotations

import random

from examples.food_ordering import geo
from examples.food_ordering.model import Cart, Item, Point, RestaurantRecord

REGION = "downtown"
DRIVER_TIMEOUT_S = 30.0

MENUS: dict[str, list[tuple[str, int]]] = {
    "pizzeria-da-mario": [("margherita", 900), ("diavola", 1100), ("tiramisu", 600)],
    "sushi-kaito": [("salmon nigiri", 1200), ("miso soup", 400), ("edamame", 500)],
    "curry-corner": [("chana masala", 1050), ("garlic naan", 350), ("mango lassi", 450)],
}
UNAVAILABLE = ("sushi-kaito", "fugu sashimi", 2400)  # on the menu, never in stock

NAMES = {
    "pizzeria-da-mario": "Pizzeria da Mario",
    "sushi-kaito": "Sushi Kaito",
    "curry-corner": "Curry Corner",
}

CUSTOMERS = ["ann", "bo", "cleo", "dev", "emil", "fay", "gus", "hana", "ivo", "jun"]


def carts(
    count: int,
    reject: int | None,
    *,
    region: str = REGION,
    driver_timeout_s: float = DRIVER_TIMEOUT_S,
    seed: int = 7,
) -> list[Cart]:
    """`count` carts; cart number `reject` (1-based) asks for a dish the kitchen cannot make."""
    rng = random.Random(seed)
    restaurants = sorted(MENUS)
    out = []
    for n in range(1, count + 1):
        restaurant = restaurants[(n - 1) % len(restaurants)]
        dishes = rng.sample(MENUS[restaurant], 2)
        if n == reject:
            restaurant, dish, price = UNAVAILABLE
            dishes = [*rng.sample(MENUS[restaurant], 1), (dish, price)]
        items = [Item(name=d, quantity=rng.randint(1, 2), price_cents=p) for d, p in dishes]
        out.append(
            Cart(
                customer=CUSTOMERS[(n - 1) % len(CUSTOMERS)],
                restaurant=restaurant,
                region=region,
                address=_somewhere(rng),
                items=items,
                total_cents=sum(i["quantity"] * i["price_cents"] for i in items),
                driver_timeout_s=driver_timeout_s,
            )
        )
    return out


def drivers(count: int, *, prefix: str = "driver", seed: int = 11) -> list[tuple[str, Point]]:
    rng = random.Random(seed)
    return [(f"{prefix}-{n}", _somewhere(rng)) for n in range(1, count + 1)]


def _somewhere(rng: random.Random) -> Point:
    return Point(x=round(rng.uniform(0, geo.CITY_KM), 1), y=round(rng.uniform(0, geo.CITY_KM), 1))


def directory() -> list[tuple[str, RestaurantRecord]]:
    """The restaurant directory's records, keyed by restaurant id: what the demo publishes to
    `restaurants` before the first checkout."""
    return [
        (rid, RestaurantRecord(name=NAMES[rid], position=geo.RESTAURANTS[rid], open=True))
        for rid in sorted(MENUS)
    ]

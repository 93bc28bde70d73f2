"""The simulated city: a grid in km, restaurants at fixed places, drivers at 1 km/s."""

from __future__ import annotations

import math

from examples.food_ordering.model import Point

CITY_KM = 6.0
SPEED_KM_S = 1.0  # simulated: a 4 km trip takes 4 seconds

RESTAURANTS: dict[str, Point] = {
    "pizzeria-da-mario": {"x": 1.0, "y": 1.5},
    "sushi-kaito": {"x": 4.5, "y": 1.0},
    "curry-corner": {"x": 3.0, "y": 4.5},
}


def distance(a: Point, b: Point) -> float:
    return math.hypot(b["x"] - a["x"], b["y"] - a["y"])


def step_towards(here: Point, target: Point, km: float) -> tuple[Point, bool]:
    """Move up to `km` towards `target`; (new position, arrived)."""
    d = distance(here, target)
    if d <= km:
        return {"x": target["x"], "y": target["y"]}, True
    f = km / d
    moved: Point = {
        "x": round(here["x"] + (target["x"] - here["x"]) * f, 3),
        "y": round(here["y"] + (target["y"] - here["y"]) * f, 3),
    }
    return moved, False


def eta_seconds(*legs: tuple[Point, Point]) -> float:
    return round(sum(distance(a, b) for a, b in legs) / SPEED_KM_S, 1)

"""The end of the demo: how each order ended, what it cost, and whether the books add up.

Checks, each against state read back through Restate: every order ended as expected; the
payment provider booked exactly one charge per order, and one refund for each cancelled
order and none for a delivered one; every driver's twin consumed that phone's location
fixes from Kafka in order with none missing; every window restate-stream emitted (orders per
restaurant, each driver's average speed) holds exactly the records published in it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from connectors.consume import read_topic
from examples.food_ordering import window_stats
from examples.food_ordering.client import FoodClient
from examples.food_ordering.driver_twin import TwinView
from examples.food_ordering.mobile_app import PhoneView
from examples.food_ordering.model import Ledger
from examples.food_ordering.settings import (
    DRIVER_SPEEDS,
    DRIVER_UPDATES,
    ORDER_COUNTS,
    ORDERS,
    bindings,
)
from examples.food_ordering.watch import Tracked, finished
from restate_stream._util.poll import PollTimeout, apoll

SPEED = "speed_km_s"  # the field of a fix the driver-speed window averages


def _euros(cents: int) -> str:
    return f"EUR {cents / 100:.2f}" if cents else "-"


def books_problem(ledger: Ledger, cancelled: bool) -> str | None:
    """What is wrong with one order's payments, if anything."""
    if len(ledger["charges"]) != 1:
        return f"{len(ledger['charges'])} charges, expected 1"
    refunds = len(ledger["refunds"])
    if refunds != (1 if cancelled else 0):
        return f"{refunds} refunds for a {'cancelled' if cancelled else 'delivered'} order"
    return None


def fixes_problem(phone: PhoneView, twin: TwinView) -> str | None:
    """Did the twin see the phone's fixes 1, 2, 3... in order, none missing (so far)?"""
    seen = twin["seen_seqs"]
    if seen != list(range(1, len(seen) + 1)):
        return f"out of order or with gaps: {seen}"
    if len(seen) > phone["seq"]:
        return f"twin saw {len(seen)} fixes, the phone sent {phone['seq']}"
    if len(seen) < phone["seq"] and not phone["running"]:
        return f"twin saw {len(seen)} of {phone['seq']} fixes"
    return None


async def drivers_settled(
    client: FoodClient, drivers: list[str], timeout: float = 15.0
) -> list[tuple[PhoneView, TwinView]]:
    """Phones and twins, once each stopped phone's twin caught up with its last fix."""

    async def views() -> list[tuple[PhoneView, TwinView]]:
        phones = await asyncio.gather(*(client.phone(d) for d in drivers))
        twins = await asyncio.gather(*(client.twin(d) for d in drivers))
        return list(zip(phones, twins, strict=True))

    def caught_up(pairs: list[tuple[PhoneView, TwinView]]) -> bool:
        return all(p["running"] or (t["seen_seqs"] or [0])[-1] >= p["seq"] for p, t in pairs)

    try:
        return await apoll(
            views, until=caught_up, what="twins to catch up", timeout=timeout, interval=0.25
        )
    except PollTimeout:
        return await views()  # the summary reports which twin lags


async def summarize(
    client: FoodClient, tracked: list[Tracked], expected: dict[str, str], drivers: list[str]
) -> bool:
    ok = True
    ledgers = await asyncio.gather(*(client.ledger(o.order_id) for o in tracked))
    print("summary:")
    print(f"  {'order':<15} {'who':<5} {'paid':>10} {'refunded':>10} {'took':>6}  outcome")
    for order, ledger in zip(tracked, ledgers, strict=True):
        status = order.status or "not started"
        cancelled = status.startswith("cancelled")
        took = f"{order.finished_at - order.placed_at:5.1f}s" if order.finished_at else "  -   "
        paid = sum(r["amount_cents"] for r in ledger["charges"])
        refunded = sum(r["amount_cents"] for r in ledger["refunds"])
        outcome = f"delivered by {order.driver}" if status == "delivered" else status
        problems = []
        if not finished(order.status):
            problems.append("STUCK")
        elif ("cancelled" if cancelled else "delivered") != expected[order.order_id]:
            problems.append(f"expected {expected[order.order_id]}")
        if finished(order.status) and (books := books_problem(ledger, cancelled)):
            problems.append(books)
        ok &= not problems
        flag = f"  <- {'; '.join(problems)}" if problems else ""
        print(
            f"  {order.order_id:<15} {order.customer:<5} {_euros(paid):>10} "
            f"{_euros(refunded):>10} {took:>6}  {outcome}{flag}"
        )
    for phone, twin in await drivers_settled(client, drivers):
        problem = fixes_problem(phone, twin)
        ok &= problem is None
        verdict = problem or f"saw {len(twin['seen_seqs'])}, in order, none missing"
        print(
            f"  {phone['driver_id']}: published {phone['seq']} location fixes to driver-updates; "
            f"twin: {verdict}"
        )
    return ok


@dataclass(frozen=True)
class WindowCheck:
    """One window binding's results for `keys`, and how they differ from what was published."""

    binding: str
    results: list[window_stats.WindowResult]
    problems: list[str]


async def windows_closed(
    bootstrap: str,
    binding: str,
    source: str,
    results_topic: str,
    keys: set[str],
    *,
    mean: str = "",
    still_running: bool = False,
) -> WindowCheck:
    """The binding's windows for `keys` once every one the published records make was emitted
    (their timers close the last ones: no record comes after them), or as they are at the
    timeout (the problems then say what is missing). `still_running`: records keep coming, so
    only the windows whose timers are due by now (end + grace, and 5 s to run) are compared."""
    spec = next(b.window for b in bindings().bindings if b.name == binding)
    assert spec is not None
    timeout = (spec.length + spec.grace).total_seconds() + 20.0
    value_of = (lambda data: float(data[mean])) if mean else None
    due_ms = round((spec.grace.total_seconds() + 5.0) * 1000)

    async def check() -> WindowCheck:
        ended_before = int(time.time() * 1000) - due_ms if still_running else None
        got = await asyncio.to_thread(window_stats.results, bootstrap, results_topic)
        records = await asyncio.to_thread(read_topic, bootstrap, source)
        want = window_stats.expected(records, spec, keys, value_of)
        problems = window_stats.differences(got, want, keys, ended_before)
        return WindowCheck(binding, [w for w in got if w.key in keys], problems)

    try:
        return await apoll(
            check, until=lambda c: not c.problems, what=f"{binding}'s windows", timeout=timeout
        )
    except PollTimeout:
        return await check()


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def _verdict(check: WindowCheck, what: str) -> str:
    if check.problems:
        return "  <- " + "; ".join(check.problems[:5])
    return f"  every window exact: {what}"


async def summarize_windows(
    bootstrap: str, placed: Counter[str], drivers: list[str], *, phones_running: bool = False
) -> bool:
    """Print the windows' results and check them against what was published."""
    orders, speeds = await asyncio.gather(
        windows_closed(bootstrap, "orders-per-restaurant", ORDERS, ORDER_COUNTS, set(placed)),
        windows_closed(
            bootstrap,
            "driver-speed",
            DRIVER_UPDATES,
            DRIVER_SPEEDS,
            set(drivers),
            mean=SPEED,
            still_running=phones_running,
        ),
    )
    counted = Counter[str]()
    print(f"orders per restaurant per window ({ORDERS} -> {ORDER_COUNTS}):")
    for w in orders.results:
        counted[w.key] += w.value
        print(f"  {w.key:<18} {_clock(w.start)}-{_clock(w.end)}  {w.value} order(s)")
    if counted != placed:
        orders.problems.append(f"counted {dict(counted)}, placed {dict(placed)}")
    print(_verdict(orders, f"{sum(placed.values())} orders, each counted once"))
    print(f"average speed per driver, km/s, by window ({DRIVER_UPDATES} -> {DRIVER_SPEEDS}):")
    for driver in drivers:
        mine = [w for w in speeds.results if w.key == driver]
        means = " ".join(f"{w.value:.2f}" for w in mine)
        print(f"  {driver}: {means} ({len(mine)} windows)")
    fixes = sum(w.records for w in speeds.results)
    print(_verdict(speeds, f"{fixes} fixes averaged, a fix in each of its windows"))
    return not orders.problems and not speeds.problems

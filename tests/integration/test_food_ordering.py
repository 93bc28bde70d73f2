"""The food-ordering example on the real engines, served by a separate worker process.

One worker (WorkerProcess, wrapped by the example's own bindings.yaml, pointed at the
session's stack through the file's `${...}` variables) serves every test here. Each test
uses its own region, drivers and customers, so tests do not see each other's orders; the
window tests check only their own keys (a restaurant, drivers of their own). The windows are
a few seconds long here (the file's `${ORDER_WINDOW}`...), so that they close quickly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from examples.food_ordering import app, directory, scenario
from examples.food_ordering.client import FoodClient
from examples.food_ordering.delivery_manager import NO_DRIVER
from examples.food_ordering.model import Cart, Item, Point, RestaurantRecord
from examples.food_ordering.settings import (
    BINDINGS,
    DRIVER_SPEEDS,
    DRIVER_UPDATES,
    ORDER_COUNTS,
    ORDERS,
    RESTAURANTS,
)
from examples.food_ordering.summary import SPEED, books_problem, fixes_problem, windows_closed
from examples.food_ordering.watch import finished
from restate_stream._util.poll import PollTimeout
from restate_stream._util.ports import free_ports
from restate_stream._util.process import tail
from restate_stream.bindings import BindingsFile, check_against_app, load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.publisher import FAULT_ENV
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import wait_until
from restate_stream.ui import LiveSource

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
WINDOWS = {"ORDER_WINDOW": "3s", "SPEED_WINDOW": "4s", "SPEED_ADVANCE": "2s"}


@dataclass
class Food:
    worker: WorkerProcess
    spec: BindingsFile
    ingress_url: str
    bootstrap: str

    def log(self) -> str:
        return f"--- last lines of {self.worker.log_path} ---\n{tail(self.worker.log_path, 40)}"

    async def until(
        self,
        probe: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        timeout: float = 60.0,
    ) -> T:
        try:
            return await wait_until(probe, done, timeout=timeout, interval=0.2)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None


async def _apply(spec: BindingsFile) -> None:
    async with AdminClient(spec.restate.admin_url) as admin:
        _, report = await apply_bindings(spec, admin)
        assert report.ok, report.render()


async def _unsubscribe(spec: BindingsFile) -> None:
    """So that Restate stops sending driver-updates to a worker that is gone."""
    groups = {b.consumer_group for b in spec.bindings}
    async with AdminClient(spec.restate.admin_url) as admin:
        for sub in await admin.list_subscriptions():
            if sub.options.get("group.id") in groups:
                await admin.delete_subscription(sub.id)


@pytest.fixture(scope="module")
def food(
    restate_stream_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Food]:
    stack = restate_stream_stack
    port = free_ports(1)[0]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KAFKA_BOOTSTRAP", stack.bootstrap_servers)
        env.setenv("RESTATE_ADMIN", stack.admin_url)
        env.setenv("RESTATE_INGRESS", stack.ingress_url)
        env.setenv("WORKER_URI", f"http://127.0.0.1:{port}")
        env.delenv(FAULT_ENV, raising=False)
        for name, size in WINDOWS.items():
            env.setenv(name, size)
        spec = load_bindings(BINDINGS)
        check_against_app(spec, app.services)
        assert spec.worker is not None and spec.worker.uri.endswith(f":{port}")
        log = tmp_path_factory.mktemp("food-ordering") / "worker.log"
        worker = WorkerProcess(spec.worker.app, log, port=port, cwd=REPO, bindings=BINDINGS)
        worker.start()
        try:
            asyncio.run(_apply(spec))
            food = Food(worker, spec, stack.ingress_url, stack.bootstrap_servers)
            asyncio.run(publish_restaurants(food, scenario.directory()))
            yield food
        finally:
            asyncio.run(_unsubscribe(spec))
            worker.stop()


async def publish_restaurants(food: Food, records: list[tuple[str, RestaurantRecord]]) -> None:
    """Publish restaurant records to `restaurants`; back once the table reads each one."""
    async with FoodClient(food.ingress_url) as client:
        try:
            await directory.publish(client, food.bootstrap, records, timeout=60)
        except PollTimeout as exc:
            raise AssertionError(f"{exc}\n{food.log()}") from None


def run_id() -> str:
    return uuid.uuid4().hex[:6]


def cart(
    region: str,
    customer: str,
    *dishes: str,
    timeout_s: float = 30.0,
    restaurant: str = "sushi-kaito",
) -> Cart:
    menu = dict(scenario.MENUS["sushi-kaito"]) | {scenario.UNAVAILABLE[1]: scenario.UNAVAILABLE[2]}
    items = [Item(name=d, quantity=1, price_cents=menu[d]) for d in dishes]
    return Cart(
        customer=customer,
        restaurant=restaurant,
        region=region,
        address=Point(x=5.5, y=2.0),
        items=items,
        total_cents=sum(i["price_cents"] for i in items),
        driver_timeout_s=timeout_s,
    )


async def start_drivers(client: FoodClient, region: str, count: int) -> list[str]:
    drivers = scenario.drivers(count, prefix=f"{region}-driver")
    for driver_id, position in drivers:
        await client.start_driver(driver_id, region, position)
    return [d for d, _ in drivers]


async def stop_drivers(client: FoodClient, drivers: list[str]) -> None:
    for driver_id in drivers:
        await client.stop_driver(driver_id)


async def ended(
    food: Food, client: FoodClient, order_ids: list[str], timeout: float = 60
) -> list[str]:
    async def statuses() -> list[str | None]:
        return [(await client.status(o))["status"] for o in order_ids]

    final = await food.until(statuses, lambda s: all(finished(x) for x in s), timeout)
    return [s or "" for s in final]


async def test_happy_path_delivers(food: Food) -> None:
    region = f"happy-{run_id()}"
    async with FoodClient(food.ingress_url) as client:
        drivers = await start_drivers(client, region, 1)
        try:
            order_id = await client.place_order(cart(region, "ann", "miso soup"), region)
            etas: list[float] = []

            async def status() -> str | None:
                if (eta := await client.eta(order_id)) is not None:
                    etas.append(eta)
                return (await client.status(order_id))["status"]

            await food.until(status, finished)
            view = await client.status(order_id)
            outcome = await client.outcome(order_id)
            ledger = await client.ledger(order_id)
        finally:
            await stop_drivers(client, drivers)

    assert view["status"] == "delivered", view
    assert [h["status"] for h in view["history"]] == [
        "placed",
        "paid",
        "in preparation at sushi-kaito",
        "ready, looking for a driver",
        f"driver {drivers[0]} on the way to sushi-kaito",
        f"out for delivery with {drivers[0]}",
        "delivered",
    ]
    assert outcome == {
        "order_id": order_id,
        "outcome": "delivered",
        "reason": None,
        "driver": drivers[0],
    }
    # A countdown: never up (beyond the 0.1 s rounding of positions), and down overall.
    rises = [(a, b) for a, b in itertools.pairwise(etas) if b > a + 0.1]
    assert len(etas) >= 2 and etas[-1] < etas[0] and not rises, f"ETA not counting down: {etas}"
    assert view["eta_s"] is None, "no ETA once delivered"
    assert books_problem(ledger, cancelled=False) is None, ledger
    assert ledger["charges"][0]["amount_cents"] == 400


async def test_restaurant_rejection_refunds_once_and_cancels(food: Food) -> None:
    region = f"reject-{run_id()}"
    async with FoodClient(food.ingress_url) as client:
        order_id = await client.place_order(cart(region, "bo", "edamame", "fugu sashimi"), region)
        [status] = await ended(food, client, [order_id])
        view = await client.status(order_id)
        ledger = await client.ledger(order_id)
        outcome = await client.outcome(order_id)

    reason = "restaurant rejected the order: fugu sashimi sold out at sushi-kaito"
    assert status == f"cancelled: {reason}"
    assert outcome["outcome"] == "cancelled" and outcome["reason"] == reason
    assert [h["status"] for h in view["history"]] == [
        "placed",
        "paid",
        "in preparation at sushi-kaito",
        "cancelling: refund payment",
        f"cancelled: {reason}",
    ]
    assert len(ledger["charges"]) == 1 and ledger["refunds"] == ledger["charges"], ledger


async def test_no_driver_in_time_compensates_in_reverse_order(food: Food) -> None:
    region = f"empty-{run_id()}"  # no driver ever works here
    async with FoodClient(food.ingress_url) as client:
        order_id = await client.place_order(cart(region, "cleo", "edamame", timeout_s=1.5), region)
        [status] = await ended(food, client, [order_id])
        view = await client.status(order_id)
        ledger = await client.ledger(order_id)
        tickets = await client.kitchen("sushi-kaito")
        pool = await client.driver_pool(region)

    assert status == f"cancelled: {NO_DRIVER}"
    assert [h["status"] for h in view["history"]][-4:] == [
        "ready, looking for a driver",
        "cancelling: cancel kitchen ticket",  # undone last step first
        "cancelling: refund payment",
        f"cancelled: {NO_DRIVER}",
    ]
    assert len(ledger["charges"]) == 1 and ledger["refunds"] == ledger["charges"], ledger
    assert tickets[order_id]["status"] == "cancelled"
    assert pool == {"free_drivers": [], "waiting": []}, "the timed-out request was withdrawn"


async def test_same_idempotency_key_places_one_order(
    food: Food, restate_admin: AdminClient
) -> None:
    region = f"dup-{run_id()}"
    key = f"checkout-{region}"
    the_cart = cart(region, "dev", "salmon nigiri")
    async with FoodClient(food.ingress_url) as client:
        drivers = await start_drivers(client, region, 1)
        try:
            first = await client.place_order(the_cart, key)
            again = await asyncio.gather(*(client.place_order(the_cart, key) for _ in range(3)))
            other = await client.place_order(the_cart, f"{key}-other")
            await ended(food, client, [first, other])
            ledgers = [await client.ledger(o) for o in (first, other)]
        finally:
            await stop_drivers(client, drivers)

    assert again == [first] * 3, "the same key gives back the first order"
    assert other != first, "another key is another order"
    rows = await restate_admin.query(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'order-api' "
        f"AND idempotency_key = '{key}'"
    )
    assert len(rows) == 1, rows
    runs = await restate_admin.query(
        "SELECT id FROM sys_invocation WHERE target_service_name = 'order-workflow' "
        f"AND target_handler_name = 'run' AND target_service_key IN ('{first}', '{other}')"
    )
    assert len(runs) == 2, runs
    for ledger in ledgers:
        assert books_problem(ledger, cancelled=False) is None, ledger


async def test_driver_locations_are_consumed_in_order_per_driver(food: Food) -> None:
    region = f"gps-{run_id()}"
    async with FoodClient(food.ingress_url) as client:
        drivers = await start_drivers(client, region, 3)
        try:
            order_id = await client.place_order(cart(region, "emil", "edamame"), region)
            await ended(food, client, [order_id])
            # While the phones run, the dashboard's reader sees the speed windows still open.
            held = await LiveSource(BINDINGS).contents("driver-speed", 500)
        finally:
            await stop_drivers(client, drivers)

        async def settled() -> list[tuple[int, list[int]]]:
            phones = [await client.phone(d) for d in drivers]
            twins = [await client.twin(d) for d in drivers]
            return [(p["seq"], t["seen_seqs"]) for p, t in zip(phones, twins, strict=True)]

        await food.until(settled, lambda s: all(seen[-1:] == [seq] for seq, seen in s))
        phones = [await client.phone(d) for d in drivers]
        twins = [await client.twin(d) for d in drivers]

    for phone, twin in zip(phones, twins, strict=True):
        assert phone["seq"] >= 5, phone
        assert fixes_problem(phone, twin) is None, (phone["seq"], twin["seen_seqs"])
        assert twin["location"] is not None and twin["location"]["seq"] == phone["seq"]
        assert twin["last_kafka_offset"] is not None and twin["last_kafka_offset"] >= 0

    # Each driver's average speed, window by window: every window the published fixes make
    # (by their Kafka timestamps), emitted once by its timer after the phones stopped, holding
    # exactly those fixes and the mean of their speeds.
    speeds = await windows_closed(
        food.bootstrap, "driver-speed", DRIVER_UPDATES, DRIVER_SPEEDS, set(drivers), mean=SPEED
    )
    assert speeds.problems == [], speeds.problems
    fixes = {d: p["seq"] for d, p in zip(drivers, phones, strict=True)}
    for driver in drivers:
        mine = [w for w in speeds.results if w.key == driver]
        # Hopping windows of 4s every 2s: each fix is in two of them.
        assert sum(w.records for w in mine) == 2 * fixes[driver], (driver, mine)
    assert any(w.value > 0 for w in speeds.results), "some driver drove"
    assert {w.key for w in held.windows} & set(drivers), held


async def services_max_retry_intervals(admin_url: str) -> dict[str, str]:
    """Each of the app's services' retry interval cap, as Restate registered it."""
    names = {s.name for s in app.services}
    async with AdminClient(admin_url) as admin:
        services = await admin.list_services()
    return {s["name"]: s["retry_policy"]["max_interval"] for s in services if s["name"] in names}


async def test_worker_restart_mid_demo_loses_no_order_and_charges_once(food: Food) -> None:
    # A restarted worker is called again within 2 s, not after Restate's default backoff
    # (up to a minute), which could outlast an order's driver timer.
    caps = await services_max_retry_intervals(food.spec.restate.admin_url)
    assert set(caps.values()) == {"2s"} and len(caps) == len(app.services), caps
    region = f"restart-{run_id()}"
    carts = scenario.carts(5, reject=3, region=region)
    async with FoodClient(food.ingress_url) as client:
        drivers = await start_drivers(client, region, 2)
        try:
            orders = [await client.place_order(c, f"{region}-{n}") for n, c in enumerate(carts)]

            async def statuses() -> list[str | None]:
                return [(await client.status(o))["status"] for o in orders]

            # Mid-demo: some order is on the road while others still wait for the kitchen or
            # a driver.
            await food.until(
                statuses,
                lambda s: (
                    any((x or "").startswith("driver ") for x in s)
                    and not all(finished(x) for x in s)
                ),
            )
            first_pid = food.worker.process.pid if food.worker.process else None
            food.worker.stop()
            assert food.worker.process is not None and not food.worker.process.running()
            await asyncio.sleep(1.0)  # everything keeps arriving at Restate meanwhile
            food.worker.start()
            assert food.worker.process.pid != first_pid, "a new worker process"
            final = await ended(food, client, orders, timeout=120)
            ledgers = [await client.ledger(o) for o in orders]
        finally:
            await stop_drivers(client, drivers)

    for n, (status, ledger) in enumerate(zip(final, ledgers, strict=True)):
        cancelled = n == 2  # carts are numbered from 1: reject=3 is index 2
        expected = "cancelled: restaurant rejected" if cancelled else "delivered"
        assert status.startswith(expected), (n, status)
        assert books_problem(ledger, cancelled) is None, (n, ledger)


async def test_a_refund_before_the_charge_voids_the_payment(food: Food) -> None:
    """The saga registers the refund before charging: if the charge gave up on our side but
    reaches the provider later, the earlier refund has voided it and it is refused."""
    from examples.food_ordering import payments

    order_id = f"order-void-{uuid.uuid4().hex[:6]}"
    refund = await payments.refund_card(order_id, "pay_void")
    assert refund["amount_cents"] == 0
    with pytest.raises(Exception, match="voided"):
        await payments.charge_card(order_id, "pay_void", 1_000)
    async with FoodClient(food.ingress_url) as client:
        ledger = await client.ledger(order_id)
    assert ledger["charges"] == [] and ledger["refunds"] == []
    assert ledger.get("voided") == ["pay_void"]


async def test_orders_per_restaurant_count_each_checkout_once_per_window(food: Food) -> None:
    """Orders at a restaurant of this test's own, spread over a few 3 s windows: every window
    on the results topic counts exactly the orders published to `orders` in it (by their Kafka
    timestamps), a retried checkout (same idempotency key) is not counted again, and the last
    window is emitted by its timer though no order comes after it."""
    kitchen = f"kitchen-{run_id()}"
    region = f"count-{run_id()}"
    record = RestaurantRecord(name="Test Kitchen", position=Point(x=1.0, y=1.0), open=True)
    await publish_restaurants(food, [(kitchen, record)])
    async with FoodClient(food.ingress_url) as client:
        orders = []
        for n in range(7):
            the_cart = cart(region, "fay", "edamame", timeout_s=1.0, restaurant=kitchen)
            orders.append(await client.place_order(the_cart, f"{region}-{n}"))
            if n == 3:  # the same checkout again: the first order's id, nothing published
                again = await client.place_order(the_cart, f"{region}-{n}")
                assert again == orders[-1]
            await asyncio.sleep(0.8)
        await ended(food, client, orders)

    counts = await windows_closed(
        food.bootstrap, "orders-per-restaurant", ORDERS, ORDER_COUNTS, {kitchen}
    )
    assert counts.problems == [], counts.problems
    assert sum(w.value for w in counts.results) == 7, counts.results
    assert len(counts.results) >= 2, "7 orders 0.8 s apart span more than one 3 s window"
    assert all(w.end - w.start == 3_000 for w in counts.results)


async def test_the_workflow_reads_the_restaurants_current_record(food: Food) -> None:
    """The stream-table join: the order workflow reads the restaurant's current record from
    the `restaurants` table; closed since the last record, or never published, it cancels."""
    kitchen = f"closing-{run_id()}"
    region = f"join-{run_id()}"
    where = Point(x=2.0, y=2.0)
    opened = RestaurantRecord(name="Closing Soon", position=where, open=True)
    await publish_restaurants(food, [(kitchen, opened)])

    def order(dish: str, restaurant: str = kitchen) -> Cart:
        return cart(region, "gus", dish, timeout_s=1.0, restaurant=restaurant)

    async with FoodClient(food.ingress_url) as client:
        first = await client.place_order(order("edamame"), f"{region}-1")

        async def history() -> list[str]:
            return [h["status"] for h in (await client.status(first))["history"]]

        await food.until(history, lambda h: f"in preparation at {kitchen}" in h)
        closed_now = RestaurantRecord(name="Closing Soon", position=where, open=False)
        await publish_restaurants(food, [(kitchen, closed_now)])
        closed = await client.place_order(order("miso soup"), f"{region}-2")
        unknown = await client.place_order(order("edamame", f"nowhere-{region}"), f"{region}-3")
        statuses = await ended(food, client, [closed, unknown])
        ledgers = [await client.ledger(o) for o in (closed, unknown)]
    # The dashboard's reader of the table (admin SQL over the table object's state).
    held = await LiveSource(BINDINGS).contents(RESTAURANTS, 500)

    assert statuses == [
        "cancelled: Closing Soon is closed",
        f"cancelled: unknown restaurant nowhere-{region}",
    ]
    assert [(le["charges"], le["refunds"]) for le in ledgers] == [([], [])] * 2, "never charged"
    rows = {row.key: json.loads(row.value) for row in held.table}
    assert held.keys >= 4 and rows[kitchen] == closed_now, held
    assert rows["sushi-kaito"]["name"] == "Sushi Kaito"

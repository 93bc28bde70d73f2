"""Run the food-ordering demo on the embedded local engines and check how it ends.

    python -m examples.food_ordering [--orders 4] [--drivers N] [--reject-order 2]
                                     [--deadline 75] [--keep-running]

Starts Kafka and Restate on free ports in a temp dir, serves `examples.food_ordering.app:app`
in a worker process wrapped by bindings.yaml, makes Restate match the file (Kafka cluster,
topics, deployment, subscriptions), publishes the restaurant directory, starts the drivers'
phones and checks out the customers' carts. It prints each order's status as it changes and
the drivers as they move, then a summary with the windows' results (orders per restaurant,
the drivers' average speed; 10 s windows here instead of 1 and 5 minutes). Exit 0 when every
order ended as expected (delivered, or cancelled and refunded when the restaurant rejected
it) and every window holds exactly what was published; 1 otherwise, or when an order was
stuck at the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from examples.food_ordering import directory, scenario
from examples.food_ordering.client import FoodClient
from examples.food_ordering.settings import BINDINGS, RESTAURANTS
from examples.food_ordering.summary import summarize, summarize_windows
from examples.food_ordering.watch import Tracked, Watcher
from restate_stream._util.ports import free_ports
from restate_stream._util.process import tail
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[2]
# bindings.yaml's windows are 1 minute (orders) and 5 minutes every minute (speed); a demo
# run lasts about a minute, so it shortens them, unless the environment says otherwise.
DEMO_WINDOWS = {"ORDER_WINDOW": "10s", "SPEED_WINDOW": "10s", "SPEED_ADVANCE": "5s"}


def _indent(line: str) -> None:
    print(f"  {line}", flush=True)


async def publish_directory(client: FoodClient, bootstrap: str) -> None:
    records = scenario.directory()
    await directory.publish(client, bootstrap, records)
    names = ", ".join(record["name"] for _, record in records)
    print(f"restaurants: {len(records)} records on {RESTAURANTS}, in the table: {names}")


async def demo(client: FoodClient, args: argparse.Namespace, bootstrap: str) -> int:
    await publish_directory(client, bootstrap)
    drivers = scenario.drivers(args.drivers)
    for driver_id, position in drivers:
        await client.start_driver(driver_id, scenario.REGION, position)
    where = ", ".join(f"{d} at ({p['x']:.1f},{p['y']:.1f})" for d, p in drivers)
    print(f"drivers: {len(drivers)} phones online in {scenario.REGION}: {where}")

    reject = args.reject_order or None
    print("orders (checkout through the ingress, one idempotency key per cart):")
    started = time.time()
    tracked: list[Tracked] = []
    expected: dict[str, str] = {}
    carts = scenario.carts(args.orders, reject)
    for n, cart in enumerate(carts, start=1):
        order_id = await client.place_order(cart, idempotency_key=f"checkout-{n}")
        items = ", ".join(f"{i['quantity']}x {i['name']}" for i in cart["items"])
        note = "  <- not in stock: the kitchen will reject it" if n == reject else ""
        print(f"  {order_id}  {cart['customer']:<5} {cart['restaurant']:<18} {items}{note}")
        tracked.append(Tracked(order_id, cart["customer"], time.time()))
        expected[order_id] = "cancelled" if n == reject else "delivered"
        await asyncio.sleep(0.3)
    if tracked:
        again = await client.place_order(carts[0], "checkout-1")
        same = "the same order, not a new one" if again == tracked[0].order_id else "A NEW ORDER"
        print(f"  checkout-1 sent again (a retried request): {again}, {same}")

    print("progress:")
    watcher = Watcher(client, tracked, [d for d, _ in drivers], started=started)
    all_done = await watcher.run(args.deadline)
    if not all_done:
        stuck = [o.order_id for o in tracked if o.finished_at is None]
        print(f"deadline: {len(stuck)} order(s) not finished after {args.deadline:.0f}s: {stuck}")
    if not args.keep_running:
        for driver_id, _ in drivers:
            await client.stop_driver(driver_id)
    ok = await summarize(client, tracked, expected, [d for d, _ in drivers])
    placed = Counter(cart["restaurant"] for cart in carts)
    ok &= await summarize_windows(
        bootstrap, placed, [d for d, _ in drivers], phones_running=args.keep_running
    )
    print(f"done in {time.time() - started:.1f}s: " + ("all as expected" if ok else "FAILED"))
    return 0 if ok and all_done else 1


async def run(args: argparse.Namespace) -> int:
    home = Path(tempfile.mkdtemp(prefix="food-ordering-"))
    worker_port, metrics_port = free_ports(2)
    print(f"food-ordering: Kafka and Restate on free ports, files and logs in {home}")
    stack = LocalStack(home, StackPorts.free())
    stack.start(progress=_indent)
    try:
        # bindings.yaml interpolates these; the worker inherits them and reads the same file.
        for name, size in DEMO_WINDOWS.items():
            os.environ.setdefault(name, size)
        os.environ.update(
            KAFKA_BOOTSTRAP=stack.bootstrap_servers,
            RESTATE_ADMIN=stack.admin_url,
            RESTATE_INGRESS=stack.ingress_url,
            WORKER_URI=f"http://127.0.0.1:{worker_port}",
        )
        spec = load_bindings(BINDINGS)
        assert spec.worker is not None
        worker = WorkerProcess(
            spec.worker.app,
            home / "worker.log",
            port=worker_port,
            cwd=REPO_ROOT,
            bindings=BINDINGS,
            metrics_port=metrics_port,
        )
        worker.start()
        print(f"worker: serving {spec.worker.app} at {worker.uri} (log {worker.log_path})")
        print(f"worker: metrics at http://127.0.0.1:{metrics_port}/metrics")
        try:
            async with AdminClient(spec.restate.admin_url) as admin:
                print(f"apply {BINDINGS.relative_to(REPO_ROOT)}:")
                _, report = await apply_bindings(spec, admin, progress=_indent)
                if not report.ok:
                    print(report.render())
                    return 1
            async with FoodClient(stack.ingress_url) as client:
                code = await demo(client, args, stack.bootstrap_servers)
                if code != 0:
                    print(f"last lines of {worker.log_path}:\n{tail(worker.log_path, 20)}")
                if args.keep_running:
                    print(f"\nStill running. Restate ingress {stack.ingress_url}, admin ")
                    print(f"{stack.admin_url}, Kafka {stack.bootstrap_servers}. Try:")
                    print(f"  curl -X POST {stack.ingress_url}/order-status/<order id>/get_status")
                    print(
                        f"  RESTATE_ADMIN={stack.admin_url} RESTATE_INGRESS={stack.ingress_url} "
                        f"KAFKA_BOOTSTRAP={stack.bootstrap_servers} .venv/bin/restate-stream ui "
                        f"-f {BINDINGS.relative_to(REPO_ROOT)}   (the dashboard)"
                    )
                    print("Ctrl-C stops everything.")
                    while True:
                        await asyncio.sleep(3600)
                return code
        finally:
            worker.stop()
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4, help="carts to check out (default 4)")
    parser.add_argument("--drivers", type=int, help="drivers (default: half the orders, min 2)")
    parser.add_argument(
        "--reject-order",
        type=int,
        default=2,
        metavar="IDX",
        help="1-based number of the order the restaurant rejects (default 2; 0: none)",
    )
    parser.add_argument("--deadline", type=float, default=75.0, help="seconds (default 75)")
    parser.add_argument("--keep-running", action="store_true", help="stay up until Ctrl-C")
    args = parser.parse_args()
    if args.drivers is None:
        args.drivers = max(2, (args.orders + 1) // 2)
    try:
        sys.exit(asyncio.run(run(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

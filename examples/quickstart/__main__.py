"""Run the quickstart on the embedded local engines and check the result.

    python -m examples.quickstart [--payments 2000] [--accounts 10] [--keep-running]

Starts Kafka and Restate (free ports, a temp dir), serves `examples.quickstart.app:app` in a
worker process, subscribes the `payments` topic to Account/apply_payment, produces payments
and watches the balances converge. Exits 0 when every balance matches what was produced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.poll import PollTimeout, apoll
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.testing import object_state

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


async def run(payments: int, accounts: int, keep_running: bool) -> int:
    home = Path(tempfile.mkdtemp(prefix="restate-stream-quickstart-"))
    rng = random.Random(7)
    events = [
        (f"acct-{rng.randrange(accounts):03d}", rng.randrange(-5_000, 20_000))
        for _ in range(payments)
    ]
    expected: Counter[str] = Counter()
    for key, cents in events:
        expected[key] += cents

    with LocalStack(home, StackPorts.free()) as stack:
        worker = WorkerProcess("examples.quickstart.app:app", home / "worker.log", cwd=REPO_ROOT)
        worker.start()
        print(f"worker: serving examples.quickstart.app:app at {worker.uri}")
        try:
            async with AdminClient(stack.admin_url) as admin:
                deployment = await admin.register_deployment(worker.uri)
                print(f"restate: registered deployment {deployment.id} ({deployment.services})")
                TopicAdmin(stack.bootstrap_servers).create_topic("payments", 4)
                await admin.create_kafka_cluster(
                    "local", {"bootstrap.servers": stack.bootstrap_servers}
                )
                sub = await admin.create_subscription(
                    "kafka://local/payments",
                    "service://Account/apply_payment",
                    {"auto.offset.reset": "earliest"},
                )
                print(f"restate: subscription {sub.id}: {sub.source} -> {sub.sink}")
                produce_records(
                    stack.bootstrap_servers,
                    "payments",
                    (Record(k, json.dumps({"amount_cents": c})) for k, c in events),
                )
                print(f"kafka: produced {payments} payments for {accounts} accounts")
                started = time.monotonic()

                async def processed() -> int:
                    done: int = sum((await object_state(admin, "Account", "payments")).values())
                    print(f"\rprocessing {_bar(done, payments)}", end="", flush=True)
                    return done

                try:
                    await apoll(
                        processed,
                        until=lambda done: done >= payments,
                        what=f"{payments} payments to be processed",
                        timeout=300,
                        interval=0.5,
                    )
                    print(f"\nprocessed in {time.monotonic() - started:.1f}s")
                except PollTimeout as exc:
                    print(f"\n{exc}")  # the balances below show what is missing
                balances = await object_state(admin, "Account", "balance")
                ok = True
                print(f"{'account':10} {'balance':>12} {'expected':>12}")
                for key in sorted(expected):
                    match = balances.get(key) == expected[key]
                    ok &= match
                    print(
                        f"{key:10} {balances.get(key, 0) / 100:>12.2f} "
                        f"{expected[key] / 100:>12.2f} {'ok' if match else 'MISMATCH'}"
                    )
                if keep_running:
                    print(f"\nRestate admin {stack.admin_url}, ingress {stack.ingress_url}, ")
                    print(f"Kafka {stack.bootstrap_servers}. Ctrl-C stops everything.")
                    while True:
                        await asyncio.sleep(3600)
        finally:
            worker.stop()
    print("all balances match" if ok else "balances DO NOT match")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(run(args.payments, args.accounts, args.keep_running)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

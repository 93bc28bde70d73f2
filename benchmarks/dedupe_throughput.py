"""Dedupe cost: the same bound handler with `dedupe: true` and without, over CloudEvents.

Each round produces fresh records (new event ids, none repeated, so nothing is dropped) into
a topic of its own; one Restate subscription per binding then drains it, in alternating
order (on, off / off, on) so the two sides share the machine's load. With the defaults every
key receives 500 ids per round, so the 1,000-id windows are full from round 3 on: the medians
are printed over all rounds and over the rounds that start with full windows. The worker is
a separate hypercorn process, as in production; rates run from the first invocation created
to the last completed, as Restate saw them.

    .venv/bin/python -m benchmarks.dedupe_throughput [--records 10000] [--keys 20] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

import restate

from benchmarks.common import machine, remove_scratch
from benchmarks.e2e_throughput import restate_rate
from connectors import Record, TopicAdmin, produce_records
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.runtime.bound import DEDUPE_WINDOW
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPLETION_TIMEOUT = 900.0  # seconds for one drain: a hang fails the run
SERVICE = "BenchDedupe"
SIDES = ("on", "off")  # handler names; the bindings differ only in `dedupe`

bench = restate.VirtualObject(SERVICE)


async def count(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    current: int = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + 1)


for _side in SIDES:
    bench.handler(name=_side)(count)

app = restate.app([bench])


def bindings_yaml(stack: LocalStack) -> str:
    """Paused: the worker wraps the handlers; the benchmark makes the subscriptions."""
    return (
        f'restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}\n'
        f'kafka: {{clusters: {{bench: {{bootstrap.servers: "{stack.bootstrap_servers}"}}}}}}\n'
        "bindings:\n"
        + "".join(
            f"  - {{name: dedupe-{side}, topic: bench-dedupe, handler: {SERVICE}/{side},"
            f" paused: true, dedupe: {str(side == 'on').lower()}}}\n"
            for side in SIDES
        )
    )


def produce_round(bootstrap: str, topic: str, records: int, keys: int, partitions: int) -> None:
    TopicAdmin(bootstrap).create_topic(topic, partitions)
    stamp = "2026-01-01T00:00:00Z"
    produce_records(
        bootstrap,
        topic,
        (
            Record(
                f"key-{i % keys}",
                cloudevent(str(uuid.uuid4()), "bench.counted", "bench", stamp, {"seq": i}),
            )
            for i in range(records)
        ),
    )


async def state_footprint(admin: AdminClient) -> tuple[int, int]:
    """(state entries, bytes of keys and values) of one object: what eager state sends."""
    rows = await admin.query(
        f"SELECT key, value FROM state WHERE service_name = {sql_literal(SERVICE)} "
        "AND service_key = 'key-0'"
    )
    return len(rows), sum(len(row["key"]) + len(row["value"]) // 2 for row in rows)


async def run(records: int, keys: int, rounds: int, partitions: int) -> None:
    loads = [os.getloadavg()[0]]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-dedupe-"))
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    full_from = next(
        (r for r in range(1, rounds + 1) if (r - 1) * records // keys >= DEDUPE_WINDOW), None
    )
    with LocalStack(home, StackPorts.free()) as stack:
        bindings_path = home / "bindings.yaml"
        bindings_path.write_text(bindings_yaml(stack))
        worker = WorkerProcess(
            "benchmarks.dedupe_throughput:app",
            home / "worker.log",
            cwd=REPO_ROOT,
            bindings=bindings_path,
        )
        worker.start()
        try:
            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                await admin.create_kafka_cluster(
                    "bench", {"bootstrap.servers": stack.bootstrap_servers}
                )
                for r in range(1, rounds + 1):
                    topic = f"bench-dedupe-{r}"
                    produce_round(stack.bootstrap_servers, topic, records, keys, partitions)
                    order = SIDES if r % 2 else tuple(reversed(SIDES))
                    for side in order:
                        rate = await restate_rate(
                            admin, "bench", topic, records, f"service://{SERVICE}/{side}"
                        )
                        rates[side].append(rate)
                        print(
                            f"round {r}: dedupe {side:<3} {rate:>8,.0f} records/s "
                            f"(load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
                    loads.append(os.getloadavg()[0])
                counts = await admin.query(
                    f"SELECT value_utf8 FROM state WHERE service_name = {sql_literal(SERVICE)} "
                    "AND key = 'count'"
                )
                entries, size = await state_footprint(admin)
        finally:
            worker.stop()
    total = sum(int(row["value_utf8"]) for row in counts)
    print()
    print(machine())
    print(
        f"records: {records} per round, keys: {keys}, partitions: {partitions}, rounds: {rounds}, "
        f"window: {DEDUPE_WINDOW} ids (full from round {full_from})"
    )
    print(
        f"load average (1 min) at start / after each round: "
        f"{' / '.join(f'{load:.1f}' for load in loads)}"
    )
    print(f"state of one object at the end: {entries} entries, {size:,} bytes")
    rows = [("all rounds", range(rounds))]
    if full_from is not None:
        rows.append((f"rounds {full_from}-{rounds} (windows full)", range(full_from - 1, rounds)))
    for label, which in rows:
        on = statistics.median(rates["on"][i] for i in which)
        off = statistics.median(rates["off"][i] for i in which)
        print(
            f"{label}: dedupe on {on:,.0f} records/s, off {off:,.0f} records/s (medians), "
            f"ratio on/off {on / off:.3f}"
        )
    # Each round's two drains ran back to back: their ratio is the least exposed to the load.
    paired = [rates["on"][i] / rates["off"][i] for i in range(rounds)]
    print(f"per-round ratios on/off: {', '.join(f'{p:.3f}' for p in paired)}")
    print(f"median per-round ratio on/off: {statistics.median(paired):.3f}")
    if full_from is not None:
        full = statistics.median(paired[full_from - 1 :])
        print(f"median per-round ratio on/off, windows full: {full:.3f}")
    expected = records * rounds * len(SIDES)
    if total != expected:
        raise SystemExit(f"state check failed: {total} counted, expected {expected}")
    print(f"state check: {total} counted = {records} records x {rounds} rounds x 2 bindings")
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(run(args.records, args.keys, args.rounds, args.partitions))


if __name__ == "__main__":
    main()

"""The worker's h2c server: the same subscription-driven counter served by each in turn.

One fresh local stack; each round starts a worker per server (alternating which goes first),
registers it, drains the topic through a new Restate subscription into the keyed counter
(benchmarks/apps.py: one state read and write per record) and stops the worker. Rates run
from the first invocation created to the last completed, as Restate saw them (e2e_throughput's
restate_rate). CPU is utime+stime of every process in the worker's process group and the
Restate server's, read from /proc before and after each drain. Medians per server.

    .venv/bin/python -m benchmarks.serving_throughput [--records 20000] [--keys 100]
        [--partitions 4] [--rounds 3] [--servers granian,hypercorn]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import group_cpu_seconds, machine, produce_keyed, remove_scratch
from benchmarks.e2e_throughput import restate_rate
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.serving import SERVERS, ServerName
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Samples:
    rates: list[float] = field(default_factory=list)
    worker_cpu: list[float] = field(default_factory=list)  # seconds per 1,000 records
    restate_cpu: list[float] = field(default_factory=list)


async def drain(
    server: ServerName,
    stack: LocalStack,
    admin: AdminClient,
    topic: str,
    records: int,
    home: Path,
    round_no: int,
    samples: Samples,
) -> None:
    log = home / f"worker-{server}-{round_no}.log"
    worker = WorkerProcess("benchmarks.apps:app", log, cwd=REPO_ROOT, server=server)
    worker.start()
    try:
        assert worker.process is not None and stack.restate.process is not None
        worker_group, restate_group = worker.process.pid, stack.restate.process.pid
        await admin.register_deployment(worker.uri)
        worker_before = group_cpu_seconds(worker_group)
        restate_before = group_cpu_seconds(restate_group)
        rate = await restate_rate(admin, "bench", topic, records)
        samples.rates.append(rate)
        worker_spent = group_cpu_seconds(worker_group) - worker_before
        samples.worker_cpu.append(worker_spent * 1000 / records)
        samples.restate_cpu.append(
            (group_cpu_seconds(restate_group) - restate_before) * 1000 / records
        )
    finally:
        worker.stop()
    print(
        f"round {round_no}: {server:<10} {samples.rates[-1]:>8,.0f} records/s, CPU s per 1,000 "
        f"records: worker {samples.worker_cpu[-1]:.3f}, restate {samples.restate_cpu[-1]:.3f}"
        f"  (load {os.getloadavg()[0]:.2f})",
        flush=True,
    )


async def run(
    records: int, keys: int, partitions: int, rounds: int, servers: list[ServerName]
) -> None:
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-serving-"))
    results: dict[ServerName, Samples] = {server: Samples() for server in servers}
    with LocalStack(home, StackPorts.free()) as stack:
        topic = "bench-serving"
        produce_keyed(stack.bootstrap_servers, topic, records, keys, partitions)
        async with AdminClient(stack.admin_url) as admin:
            cluster = {"bootstrap.servers": stack.bootstrap_servers}
            await admin.create_kafka_cluster("bench", cluster)
            for r in range(1, rounds + 1):
                # Alternate who goes first, so a drift in the shared machine's load is paired.
                order = servers if r % 2 else list(reversed(servers))
                for server in order:
                    await drain(server, stack, admin, topic, records, home, r, results[server])
            counts = await admin.query(
                "SELECT value_utf8 FROM state WHERE service_name = 'BenchCounter'"
            )
    total = sum(int(row["value_utf8"]) for row in counts)
    print()
    print(machine())
    print(f"records: {records}, keys: {keys}, partitions: {partitions}, rounds: {rounds}")
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    print(f"{'server':<10} {'records/s':>10} {'worker CPU s/1k':>16} {'restate CPU s/1k':>17}")
    medians = {s: statistics.median(results[s].rates) for s in servers}
    for server in servers:
        samples = results[server]
        print(
            f"{server:<10} {medians[server]:>10,.0f} "
            f"{statistics.median(samples.worker_cpu):>16.3f} "
            f"{statistics.median(samples.restate_cpu):>17.3f}"
        )
    first, *others = servers
    for other in others:
        print(f"ratio {first} / {other}: {medians[first] / medians[other]:.3f}")
    expected = records * rounds * len(servers)
    if total != expected:
        raise SystemExit(f"state check failed: {total} increments, expected {expected}")
    print(f"state check: {total} increments = {records} records x {rounds * len(servers)} drains")
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    args = parser.parse_args()
    servers: list[ServerName] = []
    for name in args.servers.split(","):
        if name not in SERVERS:
            parser.error(f"--servers: {name!r} is not one of {', '.join(SERVERS)}")
        servers.append(name)  # checked against SERVERS above
    asyncio.run(run(args.records, args.keys, args.partitions, args.rounds, servers))


if __name__ == "__main__":
    main()

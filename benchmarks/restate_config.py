"""What restate-server settings do to its CPU per record on a small machine.

Each variant gets a fresh local stack (partition counts are fixed when a node first starts)
with the variant's RESTATE_* environment; a worker serves the bound counter
(benchmarks/apps.py), a Restate subscription drains the same records into it, and the
restate-server's CPU (utime+stime from /proc) per 1,000 records, the rate and its resident
memory at the end are recorded. Rounds alternate the variants' order; medians.

    .venv/bin/python -m benchmarks.restate_config [--records 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import (
    group_cpu_seconds,
    group_rss_bytes,
    machine,
    produce_keyed,
    remove_scratch,
)
from benchmarks.e2e_throughput import batch_bindings, restate_rate
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]
SINK = "service://BenchBoundCounter/count"
SMALL_MEMORY = {
    "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "512 MiB",
    "RESTATE_ADMIN__QUERY_ENGINE__MEMORY_SIZE": "256 MiB",
    "RESTATE_BIFROST__RECORD_CACHE_MEMORY_SIZE": "64 MiB",
}
VARIANTS: dict[str, dict[str, str]] = {
    "server defaults (24 partitions)": {"RESTATE_DEFAULT_NUM_PARTITIONS": "24"},
    "4 partitions": {"RESTATE_DEFAULT_NUM_PARTITIONS": "4"},
    "4 partitions, small memory": {"RESTATE_DEFAULT_NUM_PARTITIONS": "4", **SMALL_MEMORY},
}


async def one(name: str, env: dict[str, str], records: int, keys: int) -> tuple[float, float, int]:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-config-"))
    stack = LocalStack(home, StackPorts.free())
    stack.restate.extra_env.update(env)
    with stack:
        topic = "bench-config"
        produce_keyed(stack.bootstrap_servers, topic, records, keys, 4)
        bindings = home / "bindings.yaml"
        bindings.write_text(batch_bindings(stack, topic, [], 0))
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=REPO_ROOT, bindings=bindings
        )
        worker.start()
        try:
            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                cluster = {"bootstrap.servers": stack.bootstrap_servers}
                await admin.create_kafka_cluster("bench", cluster)
                assert stack.restate.process is not None
                pid = stack.restate.process.pid
                before = group_cpu_seconds(pid)
                rate = await restate_rate(admin, "bench", topic, records, SINK)
                cpu = (group_cpu_seconds(pid) - before) * 1000 / records
                rss = group_rss_bytes(pid)
        finally:
            worker.stop()
    print(
        f"{name:<34} {rate:>8,.0f} records/s, restate CPU s per 1,000 {cpu:.2f}, "
        f"RSS {rss / 2**20:,.0f} MiB (load {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    remove_scratch(home)
    return rate, cpu, rss


async def run(records: int, keys: int, rounds: int) -> None:
    load_start = os.getloadavg()[0]
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(rounds):
        for name in names if r % 2 == 0 else list(reversed(names)):
            results[name].append(await one(name, VARIANTS[name], records, keys))
    print()
    print(machine())
    print(f"records: {records}, keys: {keys}, rounds: {rounds}")
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    base = statistics.median(rate for rate, _, _ in results[names[0]])
    for name, samples in results.items():
        rate = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        rss = statistics.median(s[2] for s in samples)
        print(
            f"{name:<34} (median) {rate:>8,.0f} records/s = {rate / base:.2f} x defaults; "
            f"restate CPU s per 1,000: {cpu:.2f}; RSS {rss / 2**20:,.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.records, args.keys, args.rounds))


if __name__ == "__main__":
    main()

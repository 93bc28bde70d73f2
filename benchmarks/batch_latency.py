"""End-to-end latency of batched bindings: Kafka produce -> handler run (state write).

A separate process produces at a fixed rate (about half the batched peak) while the
batched delivery runs; the handler records, per record, now minus the record's Kafka
timestamp (set at produce), and the p50/p99 over all records are reported, for 100 keys
(a batch has many records per key) and for 10,000 keys (about one record per key per batch:
many small sends, at most `max_concurrent_sends` in flight), with one object per key
(`per: key`) and/or one per source partition (`per: partition`: a send per partition).

    .venv/bin/python -m benchmarks.batch_latency [--rate 10000] [--seconds 10]
        [--keys 100,10000] [--per key,partition] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from benchmarks.e2e_throughput import REPO_ROOT
from connectors import Record, TopicAdmin, produce_records
from restate_stream.batch import BatchDelivery
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

SERVICE = "BenchBatchLatency"


def produce_at_rate(bootstrap: str, topic: str, keys: int, rate: int, seconds: float) -> None:
    """In its own process: `rate` records/s for `seconds`, in 10 ms ticks."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    total = int(rate * seconds)
    start = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            producer.produce(topic, json.dumps({"seq": sent}).encode(), f"{topic}-k{sent % keys}")
            sent += 1
        producer.poll(0)
        time.sleep(0.01)
    producer.flush(60)


async def state_rows(admin: AdminClient, topic: str, key: str) -> list[str]:
    """Values of state `key` (a LIKE pattern) in the objects of `topic`'s records (keys
    "topic-k..." with per: key, "topic/partition" with per: partition)."""
    rows = await admin.query(
        f"SELECT value_utf8 FROM state WHERE service_name = {sql_literal(SERVICE)} "
        f"AND key LIKE {sql_literal(key)} AND (service_key LIKE {sql_literal(topic + '-%')} "
        f"OR service_key LIKE {sql_literal(topic + '/%')})"
    )
    return [row["value_utf8"] for row in rows]


async def measure(
    stack: LocalStack, admin: AdminClient, binding_name: str, bindings: Path, topic: str,
    keys: int, rate: int, seconds: float,
) -> tuple[float, float, float]:  # fmt: skip
    spec = load_bindings(bindings)
    binding = dataclasses.replace(
        next(b for b in spec.bindings if b.name == binding_name), paused=False
    )
    delivery = BatchDelivery(binding, {"bootstrap.servers": stack.bootstrap_servers},
                             stack.ingress_url)  # fmt: skip
    prefix = f"{topic}-"
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))

    async def count() -> int:
        return sum(int(v) for v in await state_rows(admin, topic, "count"))

    try:
        # Warm-up records (not sampled) wait out the group join.
        warmup = (Record(f"{prefix}w{i}", json.dumps({"warmup": True})) for i in range(10))
        produce_records(stack.bootstrap_servers, topic, warmup)
        while await count() < 10:
            await asyncio.sleep(0.2)
        expected = 10 + int(rate * seconds)
        producer = multiprocessing.Process(
            target=produce_at_rate,
            args=(stack.bootstrap_servers, topic, keys, rate, seconds),
        )
        producer.start()
        started = time.perf_counter()
        while (done := await count()) < expected:
            if task.done():
                task.result()
                raise RuntimeError("the delivery stopped")
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        producer.join()
    finally:
        stop.set()
        await task
    if done != expected:
        raise SystemExit(f"state check failed: {done} counted, expected {expected}")
    samples = sorted(s for v in await state_rows(admin, topic, "lat/%") for s in json.loads(v))
    if len(samples) != expected - 10:
        raise SystemExit(f"{len(samples)} latency samples, expected {expected - 10}")
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, (expected - 10) / elapsed


async def run(
    rate: int, seconds: float, key_counts: list[int], pers: list[str], batch_size: int
) -> None:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-latency-"))
    with LocalStack(home, StackPorts.free()) as stack:
        lines = [
            f'restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}',
            f'kafka: {{clusters: {{bench: {{bootstrap.servers: "{stack.bootstrap_servers}"}}}}}}',
            "bindings:",
        ]
        cases = [(keys, per) for keys in key_counts for per in pers]
        for i, (keys, per) in enumerate(cases):
            TopicAdmin(stack.bootstrap_servers).create_topic(f"lat{keys}{per}", 4)
            lines.append(
                f"  - {{name: lat-{keys}-{per}, topic: lat{keys}{per},"
                f" handler: {SERVICE}/latency_{i}, paused: true,"
                f" batch: {{max_records: {batch_size}, max_wait: 50ms, per: {per}}}}}"
            )
        bindings = home / "bindings.yaml"
        bindings.write_text("\n".join(lines) + "\n")
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=REPO_ROOT, bindings=bindings
        )
        worker.start()
        try:
            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                print(f"load: {os.getloadavg()[0]:.2f} (1 min)", flush=True)
                for keys, per in cases:
                    p50, p99, achieved = await measure(
                        stack, admin, f"lat-{keys}-{per}", bindings, f"lat{keys}{per}", keys,
                        rate, seconds,
                    )  # fmt: skip
                    print(
                        f"keys {keys:>6}, per {per}, batch {batch_size}, offered {rate} records/s "
                        f"(achieved {achieved:,.0f}): latency p50 {p50:,.0f} ms, "
                        f"p99 {p99:,.0f} ms",
                        flush=True,
                    )
                print(f"load: {os.getloadavg()[0]:.2f} (1 min)", flush=True)
        finally:
            worker.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--keys", default="100,10000")
    p.add_argument("--per", default="key,partition")
    p.add_argument("--batch-size", type=int, default=1000)
    a = p.parse_args()
    counts = [int(k) for k in a.keys.split(",") if k]
    pers = [per for per in a.per.split(",") if per]
    asyncio.run(run(a.rate, a.seconds, counts, pers, a.batch_size))


if __name__ == "__main__":
    main()

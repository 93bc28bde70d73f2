"""End-to-end latency of batched bindings: Kafka produce -> handler run (state write).

A separate process produces at a fixed rate (about half the batched peak) while the
batched delivery runs; the handler records, per record, now minus the record's Kafka
timestamp (set at produce), and the p50/p99 over all records are reported, for 100 keys
(a batch has many records per key) and for 10,000 keys (about one record per key per batch:
many small sends, at most `max_concurrent_sends` in flight), with one object per key
(`per: key`) and/or one per source partition (`per: partition`: a send per partition).

    .venv/bin/python -m benchmarks.batch_latency [--rate 10000] [--seconds 10]
        [--keys 100,10000] [--per key,partition] [--batch-size 1000] [--breakdown]

Comma-separated values of --keys, --per, --completion-wait, --sends and --max-wait are run
as paired cases on one stack (each combination in turn; repeat a value for more rounds).
`--warmup N` runs N cases of the first combination before them (printed as warm-up).
`--breakdown` prints where the records' latency went (benchmarks/latency_stages.py).
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

from benchmarks.apps import LATENCY_HANDLERS
from benchmarks.common import remove_scratch
from benchmarks.e2e_throughput import REPO_ROOT
from benchmarks.latency_stages import StageClock, breakdown_lines, percentile
from connectors import Record, TopicAdmin, produce_records
from restate_stream.batch import BatchDelivery
from restate_stream.batch.delivery import BATCH_CONCURRENT_SENDS, HOLD_WHILE_BEHIND
from restate_stream.batch.pacing import COMPLETION_WAIT
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


def objects_of(topic: str) -> str:
    """SQL: the state rows of `topic`'s objects."""
    return (
        f"(service_key LIKE {sql_literal(topic + '-%')}"
        f" OR service_key LIKE {sql_literal(topic + '/%')})"
    )


async def state_rows(admin: AdminClient, topic: str, key: str) -> list[str]:
    """Values of state `key` (a LIKE pattern) in the objects of `topic`'s records (keys
    "topic-k..." with per: key, "topic/partition" with per: partition)."""
    rows = await admin.query(
        f"SELECT value_utf8 FROM state WHERE service_name = {sql_literal(SERVICE)} "
        f"AND key LIKE {sql_literal(key)} AND {objects_of(topic)}"
    )
    return [row["value_utf8"] for row in rows]


async def first_samples(admin: AdminClient, topic: str) -> dict[tuple[str, int, int], int]:
    """Per invocation (object key, first record's partition and offset): its first record's
    latency sample in ms (the handler names its samples' state entry by that record)."""
    rows = await admin.query(
        "SELECT service_key, key, value_utf8 FROM state"
        f" WHERE service_name = {sql_literal(SERVICE)} AND key LIKE 'lat/%' AND {objects_of(topic)}"
    )
    runs: dict[tuple[str, int, int], int] = {}
    for row in rows:
        _, partition, offset = row["key"].split("/")
        runs[(row["service_key"], int(partition), int(offset))] = json.loads(row["value_utf8"])[0]
    return runs


async def sends_of(admin: AdminClient, topic: str) -> int:
    """Invocations the delivery made for `topic`'s objects (completed ones Restate keeps for
    their idempotency retention)."""
    rows = await admin.query(
        "SELECT count(*) AS n FROM sys_invocation"
        f" WHERE target_service_name = {sql_literal(SERVICE)}"
        f" AND (target_service_key LIKE {sql_literal(topic + '-%')}"
        f" OR target_service_key LIKE {sql_literal(topic + '/%')})"
    )
    return int(rows[0]["n"])


async def measure(
    stack: LocalStack, admin: AdminClient, binding_name: str, bindings: Path, topic: str,
    keys: int, rate: int, seconds: float, completion_wait: float, sends: int, unfinished: int,
    hold: float, calls: bool, clock: StageClock | None,
) -> tuple[float, float, float, int, int]:  # fmt: skip
    spec = load_bindings(bindings)
    binding = dataclasses.replace(
        next(b for b in spec.bindings if b.name == binding_name), paused=False
    )
    delivery = BatchDelivery(binding, {"bootstrap.servers": stack.bootstrap_servers},
                             stack.ingress_url, completion_wait=completion_wait,
                             max_concurrent_sends=sends, unfinished_per_key=unfinished,
                             hold_while_behind=hold, calls=calls, observer=clock)  # fmt: skip
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
    p99 = percentile(samples, 0.99)
    if clock is not None:
        for line in breakdown_lines(clock.split(await first_samples(admin, topic))):
            print(line, flush=True)
    invocations = await sends_of(admin, topic)
    attaches = sum(delivery._pacer.answers.values()) if delivery._pacer is not None else 0
    return statistics.median(samples), p99, (expected - 10) / elapsed, invocations, attaches


async def run(
    rate: int, seconds: float, key_counts: list[int], pers: list[str], batch_size: int,
    waits: list[float], sends: list[int], max_waits: list[int], unfinished: list[int],
    holds: list[float], calls: list[bool], breakdown: bool, warmups: int = 0,
) -> None:  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="rs-bench-latency-"))
    with LocalStack(home, StackPorts.free()) as stack:
        lines = [
            f'restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}',
            f'kafka: {{clusters: {{bench: {{bootstrap.servers: "{stack.bootstrap_servers}"}}}}}}',
            "bindings:",
        ]
        # Paired rounds: each completion wait in turn on the same stack.
        cases = [
            (keys, per, w, n, mw, u, h, c)
            for keys in key_counts
            for per in pers
            for w in waits
            for n in sends
            for mw in max_waits
            for u in unfinished
            for h in holds
            for c in calls
        ]
        # Kafka's JIT warms over the first ~45 s of load, and a run's first cases show it (p99
        # 0.6-1.1 s in the first, 0.3-0.4 s in the second: docs/benchmarks.md): warm-ups first.
        cases = cases[:1] * warmups + cases
        assert len(cases) <= LATENCY_HANDLERS, f"at most {LATENCY_HANDLERS} cases per run"
        for i, (keys, per, _, _, max_wait, _, _, _) in enumerate(cases):
            topic = f"lat{keys}{per}w{i}"
            TopicAdmin(stack.bootstrap_servers).create_topic(topic, 4)
            lines.append(
                f"  - {{name: lat-{i}, topic: {topic},"
                f" handler: {SERVICE}/latency_{i}, paused: true,"
                f" batch: {{max_records: {batch_size}, max_wait: {max_wait}ms, per: {per}}}}}"
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
                for i, (keys, per, w, n, max_wait, u, h, c) in enumerate(cases):
                    clock = StageClock() if breakdown else None
                    p50, p99, achieved, invocations, attaches = await measure(
                        stack, admin, f"lat-{i}", bindings, f"lat{keys}{per}w{i}", keys,
                        rate, seconds, w, n, u, h, c, clock,
                    )  # fmt: skip
                    print(
                        ("warm-up: " if i < warmups else "")
                        + f"keys {keys:>6}, per {per}, completion wait {w:g}s, unfinished {u}, "
                        f"hold {h:g}s, calls {'on' if c else 'off'}, "
                        f"sends {n}, max_wait {max_wait} ms, batch {batch_size}, "
                        f"offered {rate} records/s (achieved {achieved:,.0f}): latency p50 "
                        f"{p50:,.0f} ms, p99 {p99:,.0f} ms; {invocations:,} invocations, "
                        f"{attaches:,} attaches answered; "
                        f"load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                print(f"load: {os.getloadavg()[0]:.2f} (1 min)", flush=True)
        finally:
            worker.stop()
    remove_scratch(home)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--keys", default="100,10000")
    p.add_argument("--per", default="key,partition")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument(
        "--completion-wait",
        default=f"0,{COMPLETION_WAIT:g}",
        help="seconds a key's next send waits for its previous invocation to complete; "
        "0: paced by acceptance only (comma-separated: paired rounds)",
    )
    p.add_argument(
        "--sends",
        default=str(BATCH_CONCURRENT_SENDS),
        help="max_concurrent_sends (comma-separated: paired rounds)",
    )
    p.add_argument(
        "--max-wait", default="50", help="the binding's max_wait in ms (comma-separated: paired)"
    )
    p.add_argument(
        "--unfinished",
        default="0",
        help="a key's invocations that may be unfinished when its next send is posted "
        "(comma-separated: paired)",
    )
    p.add_argument(
        "--hold",
        default=f"{HOLD_WHILE_BEHIND:g}",
        help="seconds a per-key send may be held while the consumer is behind; 0: never "
        "(comma-separated: paired)",
    )
    p.add_argument(
        "--calls",
        default="1",
        help="1: a stream's paced sends go as calls, answered at completion; 0: one-way sends "
        "and attaches (comma-separated: paired)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="cases of the first combination run before the others, printed as warm-up",
    )
    p.add_argument(
        "--breakdown", action="store_true", help="print where the latency went, stage by stage"
    )
    a = p.parse_args()
    counts = [int(k) for k in a.keys.split(",") if k]
    pers = [per for per in a.per.split(",") if per]
    waits = [float(w) for w in a.completion_wait.split(",") if w]
    sends = [int(n) for n in a.sends.split(",") if n]
    max_waits = [int(w) for w in a.max_wait.split(",") if w]
    unfinished = [int(u) for u in a.unfinished.split(",") if u]
    holds = [float(h) for h in a.hold.split(",") if h]
    calls = [c.strip() not in ("0", "off", "false") for c in a.calls.split(",") if c]
    asyncio.run(
        run(a.rate, a.seconds, counts, pers, a.batch_size, waits, sends, max_waits, unfinished,
            holds, calls, a.breakdown, a.warmup)
    )  # fmt: skip


if __name__ == "__main__":
    main()

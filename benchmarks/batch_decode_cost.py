"""Per-record cost of a batched binding's object side before the user's handler runs: the
body decoded (`decode_batch`) and each record turned into a `KafkaEvent` (JSON value into a
dict or a pydantic model, coordinates, key), against a baseline measured in the same run:
`json.loads` of the same values alone (what any Python consumer pays at least). Then whole
invocations of the bound handler (in memory: decode, high-water, events or values, a handler
that reads every value, the state written), for a handler of events and one of values
(`values: list[T]`, which takes the body's parsed values without an event per record).

Rounds alternate baseline and candidate; medians in µs/record and the ratio. With
--worker-heap the process first imports what a worker does, so garbage collections walk a
heap of a worker's size (a small script's heap made them look cheap), and then tunes its
collections as a serving process does (`tune_for_serving`).

    .venv/bin/python -m benchmarks.batch_decode_cost [--records 1000] [--rounds 7] [--keys 1]
        [--worker-heap] [--metrics]

--metrics installs the worker's metrics (a worker with `metrics_port` does), counting in
memory here (a serving process writes them to multiprocess files: no cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from restate_stream._util.gc_pause import tune_for_serving
from restate_stream.batch.handler import BatchBoundHandler, batch_handler
from restate_stream.batch.wire import WireRecord, decode_batch, encode_batch
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.bindings.loader import parse_bindings
from restate_stream.runtime.event import KafkaEvent
from restate_stream.telemetry.metrics import install_metrics
from restate_stream.testing.memory import MemoryContext, MemoryPublisher, as_context

BINDINGS = """\
restate: {admin_url: "http://127.0.0.1:9070", ingress_url: "http://127.0.0.1:8080"}
kafka: {clusters: {bench: {bootstrap.servers: "127.0.0.1:9092"}}}
bindings:
  - {name: clicks, topic: clicks, handler: Clicks/on_clicks, batch: {max_records: 10000}}
"""


class Click(BaseModel):
    seq: int
    page: str


async def on_dicts(ctx: Any, events: list[KafkaEvent[dict[str, Any]]]) -> None: ...


async def on_models(ctx: Any, events: list[KafkaEvent[Click]]) -> None: ...


async def read_events(ctx: Any, events: list[KafkaEvent[dict[str, Any]]]) -> None:
    for event in events:
        event.value  # noqa: B018 (read, as a handler does)


async def read_values(ctx: Any, values: list[dict[str, Any]]) -> None:
    for value in values:
        value  # noqa: B018


async def read_models(ctx: Any, values: list[Click]) -> None:
    for value in values:
        value  # noqa: B018


async def invocations(handler: BatchBoundHandler, data: bytes, records: int) -> float:
    """µs per record of one whole invocation (the median of several), each on a fresh object."""
    times = []
    for _ in range(9):
        ctx = as_context(MemoryContext("user-7"))
        start = time.perf_counter_ns()
        await handler(ctx, data)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / records / 1000


def body(records: int, keys: int = 1) -> bytes:
    """`keys` > 1: the records' keys take turns, as in a per: partition body (a run each)."""
    return encode_batch(
        [
            WireRecord(
                "clicks",
                1,
                i,
                1_764_000_000_000 + i,
                b"user-7" if keys == 1 else b"user-%d" % (i % keys),
                json.dumps({"seq": i, "page": f"/p/{i % 50}"}).encode(),
            )
            for i in range(records)
        ],
        json_values=True,
    )


def object_side(handler: BatchBoundHandler, data: bytes) -> float:
    ctx = as_context(MemoryContext("user-7"))
    start = time.perf_counter_ns()
    records = decode_batch(data)
    events = asyncio.run(handler._events(ctx, records, None))
    elapsed = time.perf_counter_ns() - start
    assert len(events) == len(records)
    return elapsed / len(records) / 1000


def baseline(data: bytes) -> float:
    values = [r.value for r in decode_batch(data)]
    start = time.perf_counter_ns()
    for value in values:
        assert value is not None
        json.loads(value)
    return (time.perf_counter_ns() - start) / len(values) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--keys",
        type=int,
        default=1,
        help="keys taking turns in the body (per: partition, 100 keys on 4 partitions: 25)",
    )
    parser.add_argument(
        "--worker-heap",
        action="store_true",
        help="first import what a worker serving benchmarks/apps.py imports (granian, its app), "
        "so that garbage collections walk a worker's heap, not this small script's",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="with the worker's metrics installed, as in a worker with metrics_port",
    )
    args = parser.parse_args()
    if args.metrics:
        install_metrics(["clicks"])
    if args.worker_heap:
        importlib.import_module("benchmarks.apps")
        importlib.import_module("granian")
        importlib.import_module("restate_stream.runtime.worker")
        tune_for_serving()  # as a serving process does once its app is built
    spec: BindingsFile = parse_bindings(BINDINGS, Path("bench-bindings.yaml"))
    binding: Binding = spec.bindings[0]
    handlers = {
        "dict": batch_handler(binding, on_dicts, MemoryPublisher()),
        "pydantic model": batch_handler(binding, on_models, MemoryPublisher()),
    }
    whole = {
        "events of dicts": batch_handler(binding, read_events, MemoryPublisher()),
        "values, dicts": batch_handler(binding, read_values, MemoryPublisher()),
        "values, pydantic models": batch_handler(binding, read_models, MemoryPublisher()),
    }
    data = body(args.records, args.keys)
    results: dict[str, list[float]] = {
        "baseline": [], **{name: [] for name in handlers}, **{name: [] for name in whole}
    }  # fmt: skip
    for _ in range(args.rounds):
        results["baseline"].append(baseline(data))
        for name, handler in handlers.items():
            results[name].append(object_side(handler, data))
        for name, handler in whole.items():
            results[name].append(asyncio.run(invocations(handler, data, args.records)))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"records per body: {args.records}, keys: {args.keys}, rounds: {args.rounds}, "
        f"load: {os.getloadavg()[0]:.2f}, "
        f"objects tracked by the garbage collector: {len(gc.get_objects()):,}"
    )
    base = statistics.median(results["baseline"])
    print(f"baseline json.loads of the values:     {base:6.2f} µs/record")
    for name in handlers:
        median = statistics.median(results[name])
        ratio = median / base
        print(f"object side, values as {name:<15} {median:6.2f} µs/record = {ratio:.2f} x baseline")
    events = statistics.median(results["events of dicts"])
    for name in whole:
        median = statistics.median(results[name])
        print(
            f"whole invocation, {name:<24} {median:6.2f} µs/record = {median / base:.2f} x "
            f"baseline, {median / events:.2f} x events of dicts"
        )


if __name__ == "__main__":
    main()

"""Per-record CPU of a batched binding's delivery between Kafka and the ingress, without
either: a cut of polled confluent-kafka messages turned into records (GroupConsumer's poll),
grouped by object key, and each key's request built (body and idempotency key), against the
minimal bridge's same work on the same messages (benchmarks/minimal_bridge.py: group by key,
one body per key with the values spliced in), measured in the same run.

Messages are built in memory (JSON values {"seq": i}, keys key-<i mod keys> hashed onto
partitions, as benchmarks/e2e_throughput.py produces them). Passes alternate baseline and
candidate; the minimum over passes, in µs/record, and the ratio.

    .venv/bin/python -m benchmarks.delivery_cost [--records 10000] [--keys 100] [--passes 30]
        [--per key]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from benchmarks.minimal_bridge import body as bridge_body
from connectors.group_consumer import GroupConsumer, PolledRecord
from restate_stream.batch.sends import BatchShape
from restate_stream.bindings import BindingsFile
from restate_stream.bindings.loader import parse_bindings

TOPIC = "clicks"


def bindings(records: int, per: str) -> str:
    return f"""\
restate: {{admin_url: "http://127.0.0.1:9070", ingress_url: "http://127.0.0.1:8080"}}
kafka: {{clusters: {{bench: {{bootstrap.servers: "127.0.0.1:9092"}}}}}}
bindings:
  - {{name: clicks, topic: {TOPIC}, handler: Clicks/on_clicks, format: json,
     batch: {{max_records: {records}, per: {per}}}}}
"""


def messages(records: int, keys: int, partitions: int) -> list[Message]:
    out = []
    offsets = [0] * partitions
    for i in range(records):
        key = f"key-{i % keys}".encode()
        partition = zlib.crc32(key) % partitions
        offsets[partition] += 1
        out.append(
            Message(
                topic=TOPIC,
                partition=partition,
                offset=offsets[partition],
                key=key,
                value=json.dumps({"seq": i}).encode(),
                timestamp=(TIMESTAMP_CREATE_TIME, 1_764_000_000_000 + i),
            )
        )
    return out


class _Polled:
    """Stands in for confluent-kafka's Consumer: consume() returns the cut."""

    def __init__(self, cut: list[Message]) -> None:
        self.cut = cut

    def consume(self, max_records: int, timeout: float) -> list[Message]:
        return self.cut


def reader(cut: list[Message]) -> Callable[[], list[PolledRecord]]:
    """GroupConsumer's own poll over `cut` (on this thread; no broker)."""
    consumer = GroupConsumer({"bootstrap.servers": "127.0.0.1:9"}, TOPIC, "bench")
    consumer._consumer = _Polled(cut)  # type: ignore[assignment]
    return lambda: consumer._poll(len(cut), 0)


def delivery(shape: BatchShape, poll: Callable[[], list[PolledRecord]]) -> float:
    start = time.perf_counter_ns()
    records = poll()
    for key, group in shape.group(records).items():
        shape.request(key, group)
    return (time.perf_counter_ns() - start) / len(records) / 1000


def bridge(cut: list[Message]) -> float:
    start = time.perf_counter_ns()
    by_key: dict[bytes, list[Message]] = {}
    for message in cut:
        if message.error() is not None:
            raise AssertionError(message.error())
        by_key.setdefault(message.key() or b"", []).append(message)
    for group in by_key.values():
        bridge_body(group)
    return (time.perf_counter_ns() - start) / len(cut) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records per cut")
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--per", choices=["key", "partition"], default="key")
    args = parser.parse_args()
    spec: BindingsFile = parse_bindings(
        bindings(args.records, args.per), Path("bench-bindings.yaml")
    )
    shape = BatchShape(spec.bindings[0])
    cut = messages(args.records, args.keys, args.partitions)
    poll = reader(cut)
    base, ours = [], []
    for _ in range(args.passes):
        base.append(bridge(cut))
        ours.append(delivery(shape, poll))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"records per cut: {args.records}, keys: {args.keys}, per: {args.per}, "
        f"passes: {args.passes}, load: {os.getloadavg()[0]:.2f}"
    )
    print(f"minimal bridge (group, body):            {min(base):6.3f} µs/record")
    print(
        f"delivery (records, group, requests):     {min(ours):6.3f} µs/record"
        f" = {min(ours) / min(base):.2f} x bridge"
    )


if __name__ == "__main__":
    main()

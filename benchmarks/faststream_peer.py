"""FastStream (PyPI `faststream[kafka,confluent]`) as a peer of the end-to-end benchmark: the
same keyed count over the same topic, in an in-memory dict, committing after each handler
returns (`AckPolicy.ACK`: at-least-once), on its aiokafka or its confluent-kafka broker, with a
per-message or a batch subscriber.

Run by benchmarks/e2e_throughput.py (--peers) as a subprocess, one per peer row; it prints one
JSON line: the rate from the first record handled to the last, and this process's CPU seconds
(all its threads: librdkafka's and aiokafka's too) over the same span.

    .venv/bin/python -m benchmarks.faststream_peer --broker aiokafka --subscriber batch \
        --bootstrap 127.0.0.1:9092 --topic bench-e2e --records 20000 --max-records 1000
"""

# No `from __future__ import annotations`: FastStream resolves the handlers' annotations, and
# KafkaMessage is imported inside subscribe().
import argparse
import asyncio
import json
import logging
import resource
import time
import uuid
from collections import Counter
from typing import Any

from faststream import AckPolicy

from connectors.group_consumer import FETCH_PROPERTIES

BROKERS = ("aiokafka", "confluent")
SUBSCRIBERS = ("per-message", "batch")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Tally:
    """The keyed count, and when (wall clock and CPU) the first and the last record came."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.counts: Counter[bytes] = Counter()
        self.seen = 0
        self.started = (0.0, 0.0)
        self.done = asyncio.Event()

    def add(self, keys: list[bytes]) -> None:
        if self.seen == 0:
            self.started = (time.perf_counter(), cpu_seconds())
        self.counts.update(keys)
        self.seen += len(keys)
        if self.seen >= self.expected and not self.done.is_set():
            self.finished = (time.perf_counter(), cpu_seconds())
            self.done.set()

    def report(self) -> dict[str, float]:
        (t0, c0), (t1, c1) = self.started, self.finished
        return {
            "records_per_s": (self.expected - 1) / (t1 - t0),
            "cpu_s_per_1000": (c1 - c0) * 1000 / self.expected,
            "counted": sum(self.counts.values()),
        }


def subscribe(broker_name: str, tally: Tally, args: argparse.Namespace) -> Any:
    """The broker, with one subscriber that counts by record key."""
    batch = args.subscriber == "batch"
    options: dict[str, Any] = {
        "group_id": f"bench-faststream-{uuid.uuid4().hex}",
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.ACK,
        "batch": batch,
    }
    if batch:
        options["max_records"] = args.max_records
    if broker_name == "aiokafka":
        from faststream.kafka import KafkaBroker
        from faststream.kafka.annotations import KafkaMessage

        broker: Any = KafkaBroker(args.bootstrap, log_level=logging.DEBUG)

        def keys(message: Any) -> list[bytes]:
            raw = message.raw_message
            return [r.key for r in raw] if batch else [raw.key]
    else:
        from faststream.confluent import KafkaBroker as ConfluentBroker
        from faststream.confluent.annotations import KafkaMessage  # type: ignore[assignment]

        # Fetching as restate-stream's consumer does: not 1 s without a fetch once
        # librdkafka's queue held 100,000 records.
        broker = ConfluentBroker(
            args.bootstrap,
            log_level=logging.DEBUG,
            config={"fetch.queue.backoff.ms": FETCH_PROPERTIES["fetch.queue.backoff.ms"]},
        )

        def keys(message: Any) -> list[bytes]:
            raw = message.raw_message
            return [r.key() for r in raw] if batch else [raw.key()]

    if batch:

        @broker.subscriber(args.topic, **options)  # type: ignore[untyped-decorator]
        async def count_batch(values: list[dict[str, Any]], message: KafkaMessage) -> None:
            tally.add(keys(message))

    else:

        @broker.subscriber(args.topic, **options)  # type: ignore[untyped-decorator]
        async def count_one(value: dict[str, Any], message: KafkaMessage) -> None:
            tally.add(keys(message))

    return broker


async def run(args: argparse.Namespace) -> dict[str, float]:
    tally = Tally(args.records)
    broker = subscribe(args.broker, tally, args)
    await broker.start()
    try:
        await asyncio.wait_for(tally.done.wait(), args.timeout)
    finally:
        await broker.stop()
    return tally.report()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=BROKERS, required=True)
    parser.add_argument("--subscriber", choices=SUBSCRIBERS, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--max-records", type=int, default=1000, help="a batch's at most")
    parser.add_argument("--timeout", type=float, default=600.0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()

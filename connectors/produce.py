"""Batch production for tests, tools and benchmarks (handlers use the durable publisher)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from connectors import errors as kafka_errors
from connectors.logs import with_logger
from connectors.producer import ProduceError, with_defaults


@dataclass(frozen=True)
class Record:
    key: bytes | str | None
    value: bytes | str | None
    partition: int | None = None
    headers: list[tuple[str, str | bytes | None]] | None = None


def produce_records(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[Record],
    *,
    flush_timeout: float = 60.0,
    config: Mapping[str, str] | None = None,
) -> int:
    """Produce in order with idempotence on (per-partition order survives retries).

    Waits for every acknowledgement; raises ProduceError naming the first failed record.
    """
    properties = with_defaults({"bootstrap.servers": bootstrap_servers, **(config or {})})
    producer = kafka_errors.new_client("Kafka producer", Producer, with_logger(properties))
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"key={msg.key()!r}: {err.str()}")

    count = 0
    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    partition=-1 if record.partition is None else record.partition,  # -1: by key
                    headers=record.headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
        count += 1
        producer.poll(0)
    remaining = producer.flush(flush_timeout)
    if remaining:
        message = f"{remaining} of {count} records to {topic!r} were not acknowledged"
        raise ProduceError(topic, None, "not acknowledged", retriable=True, message=message)
    if failures:
        message = f"{len(failures)} of {count} records to {topic!r} failed; first: {failures[0]}"
        raise ProduceError(topic, None, failures[0], message=message)
    return count

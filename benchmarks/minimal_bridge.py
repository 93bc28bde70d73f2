"""The simplest correct batching bridge, without restate-stream: the baseline its batched
delivery is measured against (benchmarks/e2e_throughput.py).

One confluent-kafka consumer polls up to 4x the batch size, groups the records by key and
sends each key's records to a keyed object in one Restate ingress send (an idempotency key
names the records); once every send is accepted it commits. After a crash the uncommitted
records come again: the object keeps a per-partition high-water offset in its state and
counts only records past it, so each record counts once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import restate
from confluent_kafka import Consumer, KafkaException, Message

SERVICE = "MinimalBridgeCounter"
counter = restate.VirtualObject(SERVICE)


@counter.handler()
async def count(ctx: restate.ObjectContext, records: list[dict[str, Any]]) -> None:
    """`records`: [{"p": partition, "o": offset, "v": value}], offset order per partition."""
    high: dict[str, int] = await ctx.get("high", type_hint=dict[str, int]) or {}
    fresh = 0
    for record in records:
        partition = str(record["p"])
        if record["o"] > high.get(partition, -1):
            high[partition] = record["o"]
            fresh += 1
    ctx.set("high", high)
    ctx.set("count", (await ctx.get("count", type_hint=int) or 0) + fresh)


def body(messages: list[Message]) -> bytes:
    # The values are JSON already: spliced in, decoded once, by the handler. (A polled
    # record's partition and offset are never None, whatever the stubs allow.)
    items = (
        b'{"p":%d,"o":%d,"v":%s}' % (m.partition(), m.offset(), m.value() or b"null")  # type: ignore[str-format]
        for m in messages
    )
    return b"[" + b",".join(items) + b"]"


class MinimalBridge:
    def __init__(self, bootstrap: str, ingress_url: str, topic: str, group: str, batch: int):
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": "false",
                # As restate-stream's consumer fetches (connectors/group_consumer.py): not
                # 1 s without a fetch once librdkafka's queue held 100,000 records.
                "fetch.queue.backoff.ms": 10,
            }
        )
        self.topic, self.group, self.batch, self.ingress_url = topic, group, batch, ingress_url
        self.prefix = ""  # object keys' prefix: a benchmark round's objects are its own
        self.delivered = 0  # records whose send Restate accepted
        self.sends = 0
        self.first_dispatch: float | None = None  # perf_counter() at the first send

    async def send(self, http: aiohttp.ClientSession, key: bytes, messages: list[Message]) -> None:
        first, last = messages[0], messages[-1]  # one key: one partition
        path = f"/{SERVICE}/{quote(self.prefix + key.decode(), safe='')}/count/send"
        idempotency = f"{self.group}/{first.partition()}/{first.offset()}-{last.offset()}"
        headers = {"content-type": "application/json", "idempotency-key": idempotency}
        async with http.post(path, data=body(messages), headers=headers) as response:
            response.raise_for_status()

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer.subscribe([self.topic])
        try:
            async with aiohttp.ClientSession(self.ingress_url) as http:
                while not stop.is_set():
                    polled = await asyncio.to_thread(self.consumer.consume, 4 * self.batch, 0.05)
                    by_key: dict[bytes, list[Message]] = {}
                    for message in polled:
                        if message.error() is not None:
                            raise KafkaException(message.error())
                        by_key.setdefault(message.key() or b"", []).append(message)
                    if not by_key:
                        continue
                    if self.first_dispatch is None:
                        self.first_dispatch = time.perf_counter()
                    await asyncio.gather(*(self.send(http, k, ms) for k, ms in by_key.items()))
                    self.consumer.commit(asynchronous=False)  # what was polled: all accepted
                    self.delivered += len(polled)
                    self.sends += len(by_key)
        finally:
            self.consumer.close()

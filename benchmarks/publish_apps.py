"""The handlers the publish benchmark drives.

- `BenchRelay/relay`: bound to a trigger topic by a binding, publishes each record it gets
  to `<trigger topic>.out` with one durable `Publisher.publish` (consume -> handle -> publish).
- `BenchRelayMany/relay_many`: bound the same way, but each trigger record asks for `fan_out`
  records, all published with ONE `Publisher.publish_many` (one durable step per invocation).
- `BenchSink/consume`: the same shape (keyed, bound, JSON decoded) that publishes nothing,
  so the two together isolate the cost of the durable publish.
- `BenchPublisher/publish`: unbound, called through the HTTP ingress; publishes to the topic
  named in its input.

The worker process learns the broker from BENCH_BOOTSTRAP.
"""

from __future__ import annotations

import os
from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Outgoing, Publisher

BOOTSTRAP_ENV = "BENCH_BOOTSTRAP"
OUTPUT_SUFFIX = ".out"


def value(i: int) -> dict[str, Any]:
    """The benchmark's record number `i` (the same payload for every candidate)."""
    return {"seq": i, "driver": f"driver-{i % 97}", "lat": 52.37 + i * 1e-6, "lon": 4.89}


publisher = Publisher({"bootstrap.servers": os.environ.get(BOOTSTRAP_ENV, "127.0.0.1:9092")})
bench_publisher = restate.VirtualObject("BenchPublisher")
bench_relay = restate.VirtualObject("BenchRelay")
bench_relay_many = restate.VirtualObject("BenchRelayMany")
bench_sink = restate.VirtualObject("BenchSink")


@bench_publisher.handler()
async def publish(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    await publisher.publish(ctx, event["topic"], ctx.key(), event["value"])


@bench_relay.handler()
async def relay(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await publisher.publish(ctx, event.topic + OUTPUT_SUFFIX, event.key, event.value)


@bench_relay_many.handler()
async def relay_many(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    """Trigger {"first": i, "fan_out": k, "keys": n}: records i..i+k-1 keyed as the raw baseline."""
    first, fan_out, keys = event.value["first"], event.value["fan_out"], event.value["keys"]
    out = event.topic + OUTPUT_SUFFIX
    batch = [Outgoing(out, f"key-{i % keys}", value(i)) for i in range(first, first + fan_out)]
    await publisher.publish_many(ctx, batch)


@bench_sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    return None


app = restate.app([bench_publisher, bench_relay, bench_relay_many, bench_sink])

"""The handlers the publish benchmark drives.

- `BenchRelay/relay`: bound to a trigger topic by a binding, publishes each record it gets
  to `<trigger topic>.out` with one durable `Publisher.publish` (consume -> handle -> publish).
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
from restate_stream.runtime.publisher import Publisher

BOOTSTRAP_ENV = "BENCH_BOOTSTRAP"
OUTPUT_SUFFIX = ".out"

publisher = Publisher({"bootstrap.servers": os.environ.get(BOOTSTRAP_ENV, "127.0.0.1:9092")})
bench_publisher = restate.VirtualObject("BenchPublisher")
bench_relay = restate.VirtualObject("BenchRelay")
bench_sink = restate.VirtualObject("BenchSink")


@bench_publisher.handler()
async def publish(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    await publisher.publish(ctx, event["topic"], ctx.key(), event["value"])


@bench_relay.handler()
async def relay(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await publisher.publish(ctx, event.topic + OUTPUT_SUFFIX, event.key, event.value)


@bench_sink.handler()
async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    return None


app = restate.app([bench_publisher, bench_relay, bench_sink])

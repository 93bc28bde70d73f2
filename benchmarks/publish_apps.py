"""The handler the publish benchmark drives: one durable publish per invocation.

The worker process learns the broker from BENCH_BOOTSTRAP; the topic comes with each input.
"""

from __future__ import annotations

import os
from typing import Any

import restate

from restate_stream.publisher import Publisher

BOOTSTRAP_ENV = "BENCH_BOOTSTRAP"

publisher = Publisher({"bootstrap.servers": os.environ.get(BOOTSTRAP_ENV, "127.0.0.1:9092")})
bench_publisher = restate.VirtualObject("BenchPublisher")


@bench_publisher.handler()
async def publish(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    await publisher.publish(ctx, event["topic"], ctx.key(), event["value"])


app = restate.app([bench_publisher])

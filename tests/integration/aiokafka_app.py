"""A bound handler that relays each consumed record with the aiokafka publisher.

The test sets `publisher` (bootstrap servers are known only then) and serves the app
in-process. The first attempt of each record fails right after its publish, so Restate
retries the invocation: the replay must take the ack from the journal, not publish again.
"""

from __future__ import annotations

from typing import Any

import restate

from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Publisher

publisher: Publisher | None = None
# (topic, partition, offset) of records whose first attempt already failed after publishing.
failed_once: set[tuple[str, int, int]] = set()

relay = restate.VirtualObject("AioRelay")


@relay.handler()
async def forward(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    assert publisher is not None, "the test sets aiokafka_app.publisher"
    out = event.value["out"]
    published = await publisher.publish(
        ctx, out, event.key, {"n": event.value["n"]}, event_type="relayed"
    )
    where = (event.topic, event.partition, event.offset)
    if where not in failed_once:
        failed_once.add(where)
        # Retryable: the bound handler re-raises and Restate replays the journal.
        raise ConnectionError(f"failing {where} once after its publish")
    sent: list[list[Any]] = await ctx.get("sent") or []
    sent.append([event.value["n"], published.event_id, published.partition, published.offset])
    ctx.set("sent", sent)


app = restate.app([relay])

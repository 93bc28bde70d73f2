"""The object for tests/integration/test_migrate.py: each key keeps, in order, the sequence
number and the Kafka place (partition, offset) of every record it applied, so a record lost,
applied twice or out of order across a hand-over between deliveries shows in its state."""

from __future__ import annotations

import restate
from pydantic import BaseModel

from restate_stream.runtime.event import KafkaEvent


class Item(BaseModel):
    seq: int


migrate_log = restate.VirtualObject("MigrateLog")


@migrate_log.handler()
async def on_item(ctx: restate.ObjectContext, event: KafkaEvent[Item]) -> None:
    applied: list[list[int]] = await ctx.get("applied") or []
    applied.append([event.value.seq, event.partition, event.offset])
    ctx.set("applied", applied)


app = restate.app([migrate_log])

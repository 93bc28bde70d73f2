"""The virtual object restate-stream serves for a table binding, named after the binding.

One object per record key: `put` (exclusive, the binding's target, bound like any handler)
keeps the record's value as the key's `value`, and a tombstone (null value) clears it; `get`
(shared) returns it, or null. Shared handlers of an object run beside its exclusive ones, so a
read never waits behind the writes queued for that key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import restate

if TYPE_CHECKING:
    from restate_stream.bindings import Binding
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.formats import to_jsonable

VALUE = "value"
PUT, GET = "put", "get"


def table_object(binding: Binding) -> restate.VirtualObject:
    table = restate.VirtualObject(binding.name)

    def keep(ctx: restate.ObjectContext, event: KafkaEvent[Any | None]) -> None:
        if event.value is None:
            ctx.clear(VALUE)  # a tombstone deletes the key
        else:
            ctx.set(VALUE, to_jsonable(event.value))

    if binding.batch is None:

        @table.handler(PUT)
        async def put(ctx: restate.ObjectContext, event: KafkaEvent[Any | None]) -> None:
            keep(ctx, event)

    else:

        @table.handler(PUT)
        async def put_batch(
            ctx: restate.ObjectContext, events: list[KafkaEvent[Any | None]]
        ) -> None:
            keep(ctx, events[-1])  # one key's records in order: the last one is the value

    @table.handler(GET, kind="shared")
    async def get(ctx: restate.ObjectSharedContext) -> Any:
        return await ctx.get(VALUE)

    return table

"""The dedupe window: the last DEDUPE_WINDOW event ids an object processed, in its own state.

The cost per record is constant (eager state makes each get local): one entry per id, valued
with its sequence number, and a ring of DEDUPE_WINDOW slots that says which id to forget when
the next one is remembered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import restate

DEDUPE_WINDOW = 1000
SEEN_PREFIX = "restate-stream.seen/"  # + event id: its sequence number
RING_PREFIX = "restate-stream.seen-ring/"  # + (sequence number mod window): that id
SEEN_COUNT = "restate-stream.seen-seq"  # ids remembered so far: the next sequence number
LEGACY_DEDUPE_STATE = "restate-stream.seen-event-ids"  # earlier versions: one list, migrated


async def seen_count(ctx: restate.ObjectContext) -> int:
    """How many ids the object has remembered; migrates a window kept as one list first."""
    count: int | None = await ctx.get(SEEN_COUNT, type_hint=int)
    if count is not None:
        return count
    legacy: list[str] | None = await ctx.get(LEGACY_DEDUPE_STATE, type_hint=list[str])
    if not legacy:
        return 0
    # Once per object: the list's ids, oldest first, take the first sequence numbers.
    last = {event_id: n for n, event_id in enumerate(legacy)}
    ids = [event_id for n, event_id in enumerate(legacy) if last[event_id] == n]
    ids = ids[-DEDUPE_WINDOW:]
    for n, event_id in enumerate(ids):
        ctx.set(SEEN_PREFIX + event_id, n)
        ctx.set(RING_PREFIX + str(n % DEDUPE_WINDOW), event_id)
    ctx.set(SEEN_COUNT, len(ids))
    ctx.clear(LEGACY_DEDUPE_STATE)
    return len(ids)


async def in_window(ctx: restate.ObjectContext, event_id: str, count: int) -> bool:
    at: int | None = await ctx.get(SEEN_PREFIX + event_id, type_hint=int)
    # The age check keeps lookups exact should the window shrink (entries left behind).
    return at is not None and at >= count - DEDUPE_WINDOW


async def remember(ctx: restate.ObjectContext, event_id: str, count: int) -> None:
    """Remember `event_id` as number `count`; forget the id remembered DEDUPE_WINDOW before."""
    slot = RING_PREFIX + str(count % DEDUPE_WINDOW)
    evicted: str | None = await ctx.get(slot, type_hint=str)
    if evicted is not None:
        ctx.clear(SEEN_PREFIX + evicted)
    ctx.set(SEEN_PREFIX + event_id, count)
    ctx.set(slot, event_id)
    ctx.set(SEEN_COUNT, count + 1)


def remembered_ids(state: Mapping[str, Any]) -> list[str]:
    """The event ids in an object's dedupe window, oldest first, from its state by name
    (to inspect or test it; an unmigrated list counts as it is)."""
    if SEEN_COUNT not in state:
        legacy: list[str] = state.get(LEGACY_DEDUPE_STATE) or []
        return legacy[-DEDUPE_WINDOW:]
    count: int = state[SEEN_COUNT]
    seen = {
        name.removeprefix(SEEN_PREFIX): at
        for name, at in state.items()
        if name.startswith(SEEN_PREFIX) and at >= count - DEDUPE_WINDOW
    }
    return sorted(seen, key=seen.__getitem__)

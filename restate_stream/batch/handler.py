"""The object side of a batched binding: one invocation, many records of one key.

Before the user's handler runs, records at or below the object's high-water offset for their
source partition are dropped (they were applied by an earlier invocation: a redelivery), and
each remaining record is decoded in the binding's format; one that cannot be decoded goes to
the dead-letter topic alone. After the handler, the new high-water offsets are written in the
same invocation, so they commit together with the handler's state changes. A TerminalError or
exhausted retries dead-letter every record passed to the handler, and the high-water still
advances: the key moves on. Decoding, failures and dead letters are every bound handler's
(runtime/bound_base.py): this handler is the per-record one's sibling.
A record with a null value (a tombstone) is the value None for a handler whose type admits
None (`list[KafkaEvent[T | None]]`), and is dead-lettered alone (error type Tombstone)
otherwise, whatever the format; the body tells null from an empty value exactly.

`dlq redrive` sends a dead letter's record as a one-record batch with the
`restate-stream.redrive-of` header naming the letter. Such a record is at or below the
high-water by definition (it was passed before), so the check is skipped for it and the
high-water is left as it is; Restate runs it at most once per letter (the redrive's
idempotency key). If it fails again its new dead letter names the letter it was redriven
from; if it goes through, a Resolution is written, as for unbatched bindings. With a
dead-letter signing key (runtime/letter_signing.py) the header counts only with the call's
signature, which `dlq redrive` makes after it verified the letter: without it the invocation
fails (TerminalError), so nothing passes the high-water unverified.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import restate
from opentelemetry import trace

from restate_stream.batch.wire import WireError, WireRecord, decode_batch
from restate_stream.bindings import Binding
from restate_stream.runtime.bound_base import TOMBSTONE_ERROR, BoundHandler, UserFunction
from restate_stream.runtime.dead_letter import LetterRef
from restate_stream.runtime.event import (
    DeferredEvent,
    KafkaCoordinates,
    KafkaEvent,
    built,
    object_key_for,
)
from restate_stream.runtime.failures import DropRecord, RejectedRecords
from restate_stream.runtime.formats import DecodeError
from restate_stream.runtime.high_water import high_water_state, source_name
from restate_stream.runtime.logs import set_handling
from restate_stream.runtime.outcomes import observed
from restate_stream.runtime.publisher import Publisher
from restate_stream.telemetry import tracing

log = logging.getLogger("restate_stream.batch")

# Sends carry idempotency keys; resends happen within seconds (before the offsets commit), and
# a resend after this still changes nothing (the high-water drops it). Kept short because
# Restate stores one entry per invocation.
BATCH_IDEMPOTENCY_RETENTION = timedelta(hours=1)


def _coordinates(r: WireRecord, times: dict[int, datetime] | None = None) -> KafkaCoordinates:
    """`times`: the datetimes of a batch's milliseconds so far (records produced together
    share them; datetime.fromtimestamp per record was ~15% of a batched record's worker CPU)."""
    ms = r.timestamp_ms
    ts = None
    if ms is not None:
        ts = times.get(ms) if times is not None else None
        if ts is None:
            ts = datetime.fromtimestamp(ms / 1000, UTC)
            if times is not None:
                times[ms] = ts
    return built(
        KafkaCoordinates,
        {
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "timestamp": ts,
            "key": r.key,
            "subscription_id": None,
        },
    )


class _BatchEvent(DeferredEvent[Any]):
    """A batched record's event: coordinates from its wire record when first asked."""

    def _build_coordinates(self) -> KafkaCoordinates:
        fields = self.__dict__
        return _coordinates(fields["_wire"], fields["_times"])


class BatchBoundHandler(BoundHandler):
    """The bound handler of a batched binding: its input is a batch body, and the user's
    function takes a list of events."""

    batched = True
    idempotency_retention = BATCH_IDEMPOTENCY_RETENTION

    async def __call__(self, ctx: restate.ObjectContext, raw: bytes) -> Any:
        if not tracing.enabled():
            return await self._process(ctx, raw)
        with tracing.batch_span(
            self.binding.name,
            invocation_id=ctx.request().id,
            object_key=ctx.key(),
            restate_headers=ctx.request().headers,
        ):
            return await self._process(ctx, raw)

    async def _process(self, ctx: restate.ObjectContext, raw: bytes) -> Any:
        set_handling(self.binding.name, None)  # log lines name the binding
        try:
            records = decode_batch(raw)
        except WireError as exc:
            # Not a body restate-stream's consumer writes: fail visibly, change nothing.
            raise restate.TerminalError(f"binding {self.binding.name}: {exc}") from None
        if tracing.enabled():
            trace.get_current_span().set_attribute("messaging.batch.message_count", len(records))
        # Signed when signing is on: only then may the records pass the high-water check.
        redrive_of = self.sink.redrive_of(ctx.request().headers, raw)
        if redrive_of is not None:
            return await self._redrive(ctx, records, redrive_of)
        state_key = high_water_state(self.binding.name)
        high: dict[str, int] = await ctx.get(state_key) or {}
        # Per source, not per record: a batch holds few sources and many records.
        floors = {s: high.get(source_name(*s), -1) for s in {r.source for r in records}}
        fresh = [r for r in records if r.offset > floors[(r.topic, r.partition)]]
        if len(fresh) < len(records):
            log.info(
                "binding %s, key %r: dropped %d of %d records at or below the high-water %s",
                self.binding.name, ctx.key(), len(records) - len(fresh), len(records), high,
            )  # fmt: skip
            if observed():
                for r in records:
                    if r.offset <= floors[r.source]:
                        self.report(ctx, "redelivered", _coordinates(r))
        events = await self._events(ctx, fresh, None)
        if events:
            await self._handle(ctx, events, None)
        tops: dict[tuple[str, int], int] = {}
        for r in fresh:
            source = (r.topic, r.partition)
            if r.offset > tops.get(source, -1):
                tops[source] = r.offset
        for (topic, partition), top in tops.items():
            name = source_name(topic, partition)
            high[name] = max(high.get(name, -1), top)
        if fresh:
            ctx.set(state_key, high)
        return None

    async def _redrive(
        self, ctx: restate.ObjectContext, records: list[WireRecord], redrive_of: LetterRef
    ) -> None:
        events = await self._events(ctx, records, redrive_of)
        for event in await self._handle(ctx, events, redrive_of) if events else []:
            await self.sink.resolved(ctx, event.coordinates, redrive_of)

    async def _events(
        self, ctx: restate.ObjectContext, records: list[WireRecord], redrive_of: LetterRef | None
    ) -> list[KafkaEvent[Any]]:
        """The records decoded; one that cannot be is dead-lettered alone. The per-record
        work of a batch: kept to plain calls (no coroutine per record unless the codec
        needs I/O) and instances built without their dataclass __init__ (`built`)."""
        events: list[KafkaEvent[Any]] = []
        per_key = self.binding.batch is None or self.binding.batch.per == "key"
        object_key = ctx.key()
        json_codec = self.json_codec
        times: dict[int, datetime] = {}
        object_keys = functools.cache(object_key_for)  # a partition's records share few keys
        for r in records:
            value_bytes = r.value
            try:
                if value_bytes is not None and json_codec is not None:
                    value, event_id, event_type = self.from_json(value_bytes, r.parsed)
                else:
                    value, event_id, event_type = await self.decode(value_bytes)
            except DecodeError as exc:
                error = TOMBSTONE_ERROR if value_bytes is None else "DecodeError"
                raw = value_bytes or b""
                coords = _coordinates(r, times)
                await self.sink.dead_letter(ctx, coords, raw, error, str(exc), 1, redrive_of)
                continue
            events.append(
                built(
                    _BatchEvent,
                    {
                        "value": value,
                        "key": object_key if per_key else object_keys(r.key),
                        "raw": value_bytes or b"",
                        "event_id": event_id,
                        "event_type": event_type,
                        "headers": r.headers,
                        "_wire": r,
                        "_times": times,
                    },
                )
            )
        return events

    async def _handle(
        self,
        ctx: restate.ObjectContext,
        events: list[KafkaEvent[Any]],
        redrive_of: LetterRef | None,
    ) -> list[KafkaEvent[Any]]:
        """Run the user's handler; the events it applied (none if they were dead-lettered
        instead; all but those it rejected otherwise)."""
        applied, result = await self.call_user(ctx, events, events, redrive_of)
        if not applied:
            return []
        why_not = (
            {id(e): why for e, why in result.rejected}
            if isinstance(result, RejectedRecords)
            else {}
        )
        report_applied = observed()
        if not why_not and not report_applied:
            return events  # every one applied; their coordinates stay unbuilt
        taken = []
        for event in events:
            coords = event.coordinates
            why = why_not.get(id(event))
            if why is None:
                taken.append(event)
                if report_applied:
                    self.report(ctx, "applied", coords)
            elif isinstance(why, DropRecord):
                log.info("dropped record at %s: %s: %s", coords.describe(), why.cause, why)
                self.report(ctx, "dropped", coords, why.cause, str(why))
            else:
                error_type, message = why.dead_letter_type, why.message
                await self.sink.dead_letter(
                    ctx, coords, event.raw, error_type, message, 1, redrive_of
                )
        return taken


def batch_handler(binding: Binding, fn: UserFunction, publisher: Publisher) -> BatchBoundHandler:
    """The wrapper for `fn`, which must take `list[KafkaEvent[T]]` (HandlerSignatureError,
    a ValueError, otherwise)."""
    return BatchBoundHandler.of(binding, fn, publisher)

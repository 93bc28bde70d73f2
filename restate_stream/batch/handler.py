"""The object side of a batched binding: one invocation, many records of one key.

Before the user's handler runs, records at or below the object's high-water offset for their
source partition are dropped (they were applied by an earlier invocation: a redelivery), and
each remaining record is decoded in the binding's format; one that cannot be decoded goes to
the dead-letter topic alone. After the handler, the new high-water offsets are written in the
same invocation, so they commit together with the handler's state changes. A TerminalError or
exhausted retries dead-letter every record passed to the handler, and the high-water still
advances: the key moves on. Dead-letter publishing is the unbatched bound handler's.
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

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import restate
from opentelemetry import trace

from restate_stream.batch.wire import WireError, WireRecord, decode_batch
from restate_stream.bindings import Binding
from restate_stream.runtime._sdk import DisconnectedException
from restate_stream.runtime.bound import (
    TOMBSTONE_ERROR,
    BoundHandler,
    causes,
)
from restate_stream.runtime.dead_letter import LetterRef
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent, built, object_key_for
from restate_stream.runtime.formats import (
    Codec,
    DecodeError,
    JsonCodec,
    codec_for,
    unwrap_cloudevent,
)
from restate_stream.runtime.high_water import high_water_state, source_name
from restate_stream.runtime.input_types import admits_none, batch_value_type, without_none
from restate_stream.runtime.logs import set_handling
from restate_stream.runtime.outcomes import observed
from restate_stream.runtime.publisher import Publisher
from restate_stream.telemetry import tracing

log = logging.getLogger("restate_stream.batch")

# Sends carry idempotency keys; resends happen within seconds (before the offsets commit), and
# a resend after this still changes nothing (the high-water drops it). Kept short because
# Restate stores one entry per invocation.
BATCH_IDEMPOTENCY_RETENTION = timedelta(hours=1)


def _coordinates(r: WireRecord) -> KafkaCoordinates:
    ts = None if r.timestamp_ms is None else datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)
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


class BatchBoundHandler(BoundHandler):
    """A bound handler whose input is a batch body and whose user function takes a list."""

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
        redrive_of = self._redrive_of(ctx.request().headers, raw)
        if redrive_of is not None:
            return await self._redrive(ctx, records, redrive_of)
        state_key = high_water_state(self.binding.name)
        high: dict[str, int] = await ctx.get(state_key) or {}
        fresh = [r for r in records if r.offset > high.get(source_name(*r.source), -1)]
        if len(fresh) < len(records):
            log.info(
                "binding %s, key %r: dropped %d of %d records at or below the high-water %s",
                self.binding.name, ctx.key(), len(records) - len(fresh), len(records), high,
            )  # fmt: skip
            if observed():
                for r in records:
                    if r.offset <= high.get(source_name(*r.source), -1):
                        self._report(ctx, "redelivered", _coordinates(r))
        events = await self._events(ctx, fresh, None)
        if events:
            await self._handle(ctx, events, None)
        for r in fresh:
            name = source_name(*r.source)
            high[name] = max(high.get(name, -1), r.offset)
        if fresh:
            ctx.set(state_key, high)
        return None

    async def _redrive(
        self, ctx: restate.ObjectContext, records: list[WireRecord], redrive_of: LetterRef
    ) -> None:
        events = await self._events(ctx, records, redrive_of)
        if events and await self._handle(ctx, events, redrive_of):
            for event in events:
                await self._resolved(ctx, event.coordinates, redrive_of)

    async def _events(
        self, ctx: restate.ObjectContext, records: list[WireRecord], redrive_of: LetterRef | None
    ) -> list[KafkaEvent[Any]]:
        """The records decoded; one that cannot be is dead-lettered alone. The per-record
        work of a batch: kept to plain calls (no coroutine per record unless the codec
        needs I/O) and instances built without their dataclass __init__ (`built`)."""
        events: list[KafkaEvent[Any]] = []
        per_key = self.binding.batch is None or self.binding.batch.per == "key"
        object_key = ctx.key()
        json_codec = self.codec if isinstance(self.codec, JsonCodec) else None
        for r in records:
            coords = _coordinates(r)
            value_bytes = r.value
            try:
                if value_bytes is not None and json_codec is not None:
                    data, event_id, event_type = unwrap_cloudevent(json_codec.parse(value_bytes))
                    value = json_codec.convert(data)
                else:
                    value, event_id, event_type = await self._decode(value_bytes)
            except DecodeError as exc:
                error = TOMBSTONE_ERROR if value_bytes is None else "DecodeError"
                raw = value_bytes or b""
                await self._dead_letter(ctx, coords, raw, error, str(exc), 1, redrive_of)
                continue
            events.append(
                built(
                    KafkaEvent,
                    {
                        "value": value,
                        "key": object_key if per_key else object_key_for(r.key),
                        "coordinates": coords,
                        "raw": value_bytes or b"",
                        "event_id": event_id,
                        "event_type": event_type,
                        "headers": r.headers,
                    },
                )
            )
        return events

    async def _handle(
        self,
        ctx: restate.ObjectContext,
        events: list[KafkaEvent[Any]],
        redrive_of: LetterRef | None,
    ) -> bool:
        """Run the user's handler; False if its events were dead-lettered instead."""
        invocation = ctx.request().id
        started = time.perf_counter()
        try:
            with tracing.child_span("handler") if tracing.enabled() else nullcontext():
                await self.fn(ctx, events)
        except DisconnectedException:
            raise  # the attempt ended, not the handler
        except Exception as exc:
            self._ran(ctx, len(events), started, failed=True)
            terminal, internal = causes(exc)
            if internal:
                raise
            failures = self.attempts.failed(invocation)
            if terminal is not None:
                error_type, message = "TerminalError", terminal.message
            elif self.max_attempts is None or failures < self.max_attempts:
                if observed():
                    for event in events:
                        cause = type(exc).__name__
                        self._report(ctx, "retrying", event.coordinates, cause, str(exc))
                raise  # Restate retries the whole invocation (the journal replays)
            else:
                error_type, message = "RetriesExhausted", f"{type(exc).__name__}: {exc}"
            for event in events:
                coords = event.coordinates
                await self._dead_letter(
                    ctx, coords, event.raw, error_type, message, failures, redrive_of
                )
            self.attempts.forget(invocation)
            return False
        self._ran(ctx, len(events), started, failed=False)
        self.attempts.forget(invocation)
        if observed():
            for event in events:
                self._report(ctx, "applied", event.coordinates)
        return True


def batch_handler(
    binding: Binding, fn: Callable[[Any, Any], Awaitable[Any]], publisher: Publisher
) -> BatchBoundHandler:
    """The wrapper for `fn`, which must take `list[KafkaEvent[T]]` (ValueError otherwise)."""
    is_list, value_type = batch_value_type(fn)
    if not is_list:
        raise ValueError(
            f"binding {binding.name}: handler {binding.service}/{binding.handler} is batched, so "
            "its input must be declared `events: list[KafkaEvent[T]]`"
        )
    codec: Codec = codec_for(
        binding.format,
        without_none(value_type),
        binding.schema,
        binding.avro_wire,
        binding.schema_registry,
    )
    return BatchBoundHandler(
        binding, fn, codec, publisher, wants_event=True, takes_none=admits_none(value_type)
    )

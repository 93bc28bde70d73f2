"""Bound handlers: what runs between a Kafka record and the handler a binding names.

For each binding, the named handler is rewrapped in place on its service (plain handlers
stay untouched): the input is taken as raw bytes, decoded here in the binding's format into
the type the handler declares (`event: KafkaEvent[T]`), and failures that would otherwise
lose or block the record go to the binding's dead-letter topic:

- the value cannot be decoded (the SDK would fail the invocation: the record is gone);
- the handler raises TerminalError;
- a retryable error persists past the binding's `retry.max_attempts`;
- the record is a tombstone (null value) and the handler's declared type does not admit None.

Tombstones: a handler that declares `KafkaEvent[T | None]` (or `T | None`, `Any`) receives a
record with a null value as the value None, to delete what the key stands for. Restate's
subscription sends a null value as an empty body, the same as an empty value; an empty body
is therefore a tombstone in the formats where no value is encoded as zero bytes (json, avro),
and the empty value itself in the others (bytes, string). A batched binding's body says
null exactly (restate_stream.batch).

After a dead letter (runtime/dead_letter_sink.py) the invocation completes, so the key's next
records proceed. The per-record handler here and the batched one (batch/handler.py) are
siblings over runtime/bound_base.py; `bind` installs whichever a binding asks for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import restate
from restate import InvocationRetryPolicy

from restate_stream.batch.handler import BatchBoundHandler
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.runtime import _sdk
from restate_stream.runtime.bound_base import (
    TOMBSTONE_ERROR,
    AnyService,
    BoundHandler,
    UserFunction,
    tombstone_message,
)
from restate_stream.runtime.dead_letter import LetterRef
from restate_stream.runtime.dead_letter_sink import log
from restate_stream.runtime.dedupe import (
    DEDUPE_WINDOW,
    LEGACY_DEDUPE_STATE,
    SEEN_COUNT,
    SEEN_PREFIX,
    in_window,
    remember,
    remembered_ids,
    seen_count,
)
from restate_stream.runtime.event import (
    RECORD_HEADERS_HEADER,
    KafkaCoordinates,
    KafkaEvent,
    decode_record_headers,
)
from restate_stream.runtime.failures import DropRecord, RecordError, causes
from restate_stream.runtime.formats import DecodeError, envelope_traceparent
from restate_stream.runtime.formats.json import UNPARSED
from restate_stream.runtime.high_water import high_water_state, source_name
from restate_stream.runtime.logs import set_handling
from restate_stream.runtime.publisher import Publisher
from restate_stream.runtime.signature import admits_none, input_type_of, without_none
from restate_stream.telemetry import tracing

__all__ = [
    "DEDUPE_WINDOW",
    "LEGACY_DEDUPE_STATE",
    "REDRIVE_WINDOW",
    "SEEN_COUNT",
    "SEEN_PREFIX",
    "TOMBSTONE_ERROR",
    "AnyService",
    "BoundHandler",
    "DropRecord",
    "RecordBoundHandler",
    "RecordError",
    "admits_none",
    "bind",
    "causes",
    "input_type_of",
    "remembered_ids",
    "target_keeps_high_water",
    "tombstone_message",
    "with_high_water",
    "without_none",
]

# How long Restate keeps a per-record handler's completed invocations (every one, keyed or
# not, subscriptions included): Restate's own default. 30 days cost up to ~180 GiB at 412
# records/s (docs/benchmarks.md); a repeated `dlq redrive` is answered by the resolution on the
# dead-letter topic, the idempotency key only covers a redrive repeated before that was written.
REDRIVE_WINDOW = timedelta(days=1)
# Formats in which no value is encoded as zero bytes: there an empty body is a tombstone.
_EMPTY_IS_TOMBSTONE = frozenset({"json", "avro"})


class RecordBoundHandler(BoundHandler):
    """The bound handler of a per-record binding: one invocation, one record."""

    batched = False
    idempotency_retention = REDRIVE_WINDOW
    droppable = (DropRecord,)
    # Records at or below the object's high-water are dropped (an exclusive object handler:
    # `target_keeps_high_water()`); bind() sets it per handler, the worker's delivery reads
    # the same.
    keeps_high_water = False

    async def __call__(self, ctx: restate.ObjectContext, raw: bytes) -> Any:
        if not tracing.enabled():
            return await self._process_record(ctx, raw)
        headers = ctx.request().headers
        coords = KafkaCoordinates.from_headers(headers)
        parsed = self._parse_json(raw)
        with tracing.invocation_span(
            self.binding.name,
            coords,
            invocation_id=ctx.request().id,
            envelope_traceparent=None if parsed is UNPARSED else envelope_traceparent(parsed),
            restate_headers=headers,
        ):
            return await self._process_record(ctx, raw, parsed, coords)

    def _parse_json(self, raw: bytes) -> Any:
        """A JSON record parsed before the span opens, so the span can continue the trace of
        its CloudEvents envelope (and decoding does not parse it again); UNPARSED if the
        binding's format is not JSON or the record does not parse (it is dead-lettered
        inside the span)."""
        if not raw or self.json_codec is None:
            return UNPARSED
        try:
            return self.json_codec.parse(raw)
        except DecodeError:
            return UNPARSED

    async def _process_record(
        self,
        ctx: restate.ObjectContext,
        raw: bytes,
        parsed: Any = UNPARSED,
        coords: KafkaCoordinates | None = None,
    ) -> Any:
        headers = ctx.request().headers
        coords = coords or KafkaCoordinates.from_headers(headers)
        set_handling(self.binding.name, coords)  # log lines name the binding and record
        redrive_of = self.sink.redrive_of(headers, raw)
        high = await self._high_water(ctx, coords, redrive_of)
        source = source_name(coords.topic, coords.partition)
        if high is not None and coords.offset <= high.get(source, -1):
            # Applied before: a copy the other delivery brought across a hand-over, or a
            # subscription's re-read after a consumer was killed before it committed.
            log.info("dropped %s: at or below the high-water %s", coords.describe(), high)
            self.report(ctx, "redelivered", coords)
            return None
        result = await self._apply(ctx, raw, parsed, coords, headers, redrive_of)
        if high is not None:  # same invocation as the handler's changes: they commit together
            high[source] = coords.offset
            ctx.set(high_water_state(self.binding.name), high)
        return result

    async def _high_water(
        self, ctx: restate.ObjectContext, coords: KafkaCoordinates, redrive_of: LetterRef | None
    ) -> dict[str, int] | None:
        """The object's high-water offsets when this record is checked against them: on an
        exclusive object handler, for a record with Kafka coordinates, not a redrive (a
        redriven record is below it by definition; its idempotency key keeps it to once)."""
        if not self.keeps_high_water or redrive_of is not None or coords.offset < 0:
            return None
        high: dict[str, int] = await ctx.get(high_water_state(self.binding.name)) or {}
        return high

    async def _apply(
        self,
        ctx: restate.ObjectContext,
        raw: bytes,
        parsed: Any,
        coords: KafkaCoordinates,
        headers: Mapping[str, str],
        redrive_of: LetterRef | None,
    ) -> Any:
        """Decode, dedupe, run the handler; dead-letter what cannot be applied."""
        tombstone = not raw and self.binding.format in _EMPTY_IS_TOMBSTONE
        try:
            with tracing.leaf_span("decode") if tracing.enabled() else nullcontext():
                value, event_id, event_type = await self.decode(None if tombstone else raw, parsed)
        except DecodeError as exc:
            error = TOMBSTONE_ERROR if tombstone else "DecodeError"
            await self.sink.dead_letter(ctx, coords, raw, error, str(exc), 1, redrive_of)
            return None
        count = None
        if self.binding.dedupe and event_id is not None:
            count = await seen_count(ctx)
            if await in_window(ctx, event_id, count):
                log.info("dropping duplicate event %s at %s", event_id, coords.describe())
                await self.sink.resolved(ctx, coords, redrive_of)  # processed before: done
                self.report(ctx, "deduplicated", coords)
                return None
        event = KafkaEvent(
            value,
            coords.handler_key,
            coords,
            raw,
            event_id,
            event_type,
            decode_record_headers(headers.get(RECORD_HEADERS_HEADER)),
        )
        arg = event if self.wants_event else value
        applied, result = await self.call_user(ctx, arg, [event], redrive_of)
        if not applied:
            return None
        if count is not None and event_id is not None:
            # Only after success: a dead-lettered event must stay eligible for a redrive.
            await remember(ctx, event_id, count)
        await self.sink.resolved(ctx, coords, redrive_of)
        self.report(ctx, "applied", coords)
        return result


def _retry_policy(binding: Binding, processes: int) -> InvocationRetryPolicy | None:
    retry = binding.retry
    if retry is None:
        return None
    # The bound handler dead-letters at max_attempts, but each worker process counts its
    # own failures: Restate's limit is a backstop for attempts spread over all of them.
    backstop = None if retry.max_attempts is None else retry.max_attempts * (processes + 1)
    return InvocationRetryPolicy(
        initial_interval=retry.initial_interval,
        exponentiation_factor=retry.factor,
        max_interval=retry.max_interval,
        max_attempts=backstop,
        on_max_attempts="pause",
    )


def _exclusive_object(service: AnyService, handler: str) -> bool:
    """Only an exclusive object handler may write state, and only it gets per-key order."""
    kind = service.handlers[handler].kind
    return isinstance(service, restate.VirtualObject) and kind in (None, "exclusive")


def target_keeps_high_water(binding: Binding, service: AnyService) -> bool:
    """The bound handler of `binding` on `service` keeps a high-water offset per source
    partition in its object's state, written with the handler's changes: a per-record binding
    on an exclusive object handler (batched bindings keep theirs in batch/handler.py)."""
    return binding.batch is None and _exclusive_object(service, binding.handler)


def with_high_water(services: Iterable[AnyService], spec: BindingsFile) -> BindingsFile:
    """`spec` with `keeps_high_water` set on the per-record bindings whose target in the app
    keeps a high-water: a record re-sent to it is a no-op, so the worker's consumer sends it
    without an idempotency key (batch/sends.py)."""
    by_name = {s.name: s for s in services}

    def keeps(b: Binding) -> bool:
        service = by_name.get(b.service)
        return (
            service is not None
            and b.handler in service.handlers
            and target_keeps_high_water(b, service)
        )

    return dataclasses.replace(
        spec,
        bindings=[dataclasses.replace(b, keeps_high_water=keeps(b)) for b in spec.bindings],
    )


def bind(
    services: Iterable[AnyService],
    spec: BindingsFile,
    publishers: dict[str, Publisher] | None = None,
) -> list[str]:
    """Rewrap, in place, every handler a binding names; returns "Service/handler" names."""
    by_name = {s.name: s for s in services}
    processes = spec.worker.processes if spec.worker is not None else 1
    publishers = publishers if publishers is not None else {}
    wrapped = []
    for b in spec.bindings:
        service = by_name.get(b.service)
        if service is None:
            continue  # check_against_app reports it; serving other bindings still works
        handler = _sdk.registered_handler(service, b.handler)
        # Binding twice (a second bind on the same services) wraps the user's function again.
        current = _sdk.handler_function(handler)
        user_fn: UserFunction = current.fn if isinstance(current, BoundHandler) else current
        if b.cluster not in publishers:
            publishers[b.cluster] = Publisher(spec.clusters[b.cluster].properties)
        kind: type[BoundHandler] = BatchBoundHandler if b.batch is not None else RecordBoundHandler
        wrapper = kind.of(b, user_fn, publishers[b.cluster])
        if isinstance(wrapper, RecordBoundHandler):
            wrapper.keeps_high_water = target_keeps_high_water(b, service)
        _sdk.take_raw_input(
            handler,
            wrapper,
            # A consumer-delivered binding may shorten it: each of its records leaves an entry.
            idempotency_retention=b.idempotency_retention or kind.idempotency_retention,
            retry_policy=_retry_policy(b, processes),
        )
        wrapped.append(f"{b.service}/{b.handler}")
    return wrapped

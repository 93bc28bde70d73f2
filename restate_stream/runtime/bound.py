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

The dead-letter record (runtime/dead_letter.py) keeps the original key and value bytes and
says where the record came from and why it failed; the invocation then completes, so the key's
next records proceed. An invocation `dlq redrive` started from a dead letter (the
`restate-stream.redrive-of` header) names that letter in a new dead letter if it fails again,
and otherwise writes a Resolution for it: the dead-letter topic tells which records are done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import restate
from opentelemetry import trace
from restate import InvocationRetryPolicy, SdkInternalBaseException

from restate_stream.bindings import Binding, BindingsFile
from restate_stream.runtime import _sdk
from restate_stream.runtime._sdk import DisconnectedException
from restate_stream.runtime.dead_letter import (
    DEAD_LETTER_TYPE,
    REDRIVE_OF_HEADER,
    RESOLVED_TYPE,
    DeadLetter,
    LetterRef,
    Resolution,
)
from restate_stream.runtime.event import (
    RECORD_HEADERS_HEADER,
    KafkaCoordinates,
    KafkaEvent,
    decode_record_headers,
)
from restate_stream.runtime.formats import (
    Codec,
    DecodeError,
    JsonCodec,
    codec_for,
    envelope_traceparent,
    unwrap_cloudevent,
)
from restate_stream.runtime.high_water import high_water_state, source_name
from restate_stream.runtime.input_types import admits_none, input_type_of, without_none
from restate_stream.runtime.letter_signing import LetterKeys
from restate_stream.runtime.logs import set_handling
from restate_stream.runtime.outcomes import Decision, HandlerRun, Outcome, observed, report
from restate_stream.runtime.publisher import Published, Publisher
from restate_stream.telemetry import tracing

log = logging.getLogger("restate_stream.runtime.bound")

# Dedupe keeps the last DEDUPE_WINDOW event ids an object processed, at a constant cost per
# record (eager state makes each get local): one entry per id, valued with its sequence
# number, and a ring of W slots that says which id to forget when the next one is remembered.
DEDUPE_WINDOW = 1000
SEEN_PREFIX = "restate-stream.seen/"  # + event id: its sequence number
RING_PREFIX = "restate-stream.seen-ring/"  # + (sequence number mod window): that id
SEEN_COUNT = "restate-stream.seen-seq"  # ids remembered so far: the next sequence number
LEGACY_DEDUPE_STATE = "restate-stream.seen-event-ids"  # earlier versions: one list, migrated
REDRIVE_WINDOW = timedelta(days=30)
_ATTEMPTS_REMEMBERED = 10_000
TOMBSTONE_ERROR = "Tombstone"
# Formats in which no value is encoded as zero bytes: there an empty body is a tombstone.
_EMPTY_IS_TOMBSTONE = frozenset({"json", "avro"})
_UNPARSED: Any = object()  # no JSON parsed ahead (None is a parsed JSON null)

AnyService = restate.Service | restate.VirtualObject | restate.Workflow


def tombstone_message(binding: Binding) -> str:
    return (
        f"tombstone (null value): the handler {binding.service}/{binding.handler}'s type does "
        "not admit None; declare KafkaEvent[T | None] to receive deletes"
    )


class RecordError(restate.TerminalError):
    """A record restate-stream's own handlers (windows, tables) cannot take, named by `error`:
    dead-lettered with that error type (or dropped and logged without a dead-letter topic)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.dead_letter_type = error


class DropRecord(Exception):
    """Drop this record on purpose (a late one under `late: drop`): reported as dropped with
    `cause`, which metrics count; nothing is dead-lettered."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class _Attempts:
    """Failed attempts per invocation id in this process (Restate does not tell a handler).

    Only failures of the handler count: an attempt also ends when the handler suspends or a
    ctx.run step is retried, and those must not use up the binding's retries.
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()

    def failed(self, invocation_id: str) -> int:
        count = self._seen.pop(invocation_id, 0) + 1
        self._seen[invocation_id] = count
        while len(self._seen) > _ATTEMPTS_REMEMBERED:
            self._seen.popitem(last=False)
        return count

    def forget(self, invocation_id: str) -> None:
        self._seen.pop(invocation_id, None)


def causes(exc: BaseException) -> tuple[restate.TerminalError | None, bool]:
    """(the TerminalError in the cause chain, whether an SDK-internal signal is in it).

    The SDK fails an invocation for a TerminalError anywhere in `__cause__`, so a handler
    that wraps one (`raise MyError() from terminal`) is treated as terminal here too.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, restate.TerminalError):
            return cause, False
        if isinstance(cause, SdkInternalBaseException):
            return None, True
        cause = cause.__cause__
    return None, False


class BoundHandler:
    def __init__(
        self,
        binding: Binding,
        fn: Callable[[Any, Any], Awaitable[Any]],
        codec: Codec,
        publisher: Publisher,
        wants_event: bool = True,
        takes_none: bool = False,
        keeps_high_water: bool = False,
    ) -> None:
        self.binding = binding
        # An exclusive object handler: records at or below the object's high-water are dropped.
        self.keeps_high_water = keeps_high_water
        self.takes_none = takes_none  # the handler's type admits None: it gets tombstones
        self.fn = fn
        self.codec = codec
        self.wants_event = wants_event
        self.publisher = publisher
        # Read at start: a key too short stops the worker rather than its first dead letter.
        self.letter_keys = LetterKeys.from_env()
        self.attempts = _Attempts()
        retry = binding.retry
        self.max_attempts = retry.max_attempts if retry and retry.max_attempts else None

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
            envelope_traceparent=None if parsed is _UNPARSED else envelope_traceparent(parsed),
            restate_headers=headers,
        ):
            return await self._process_record(ctx, raw, parsed, coords)

    def _parse_json(self, raw: bytes) -> Any:
        """A JSON record parsed before the span opens, so the span can continue the trace of
        its CloudEvents envelope (and decoding does not parse it again); _UNPARSED if the
        binding's format is not JSON or the record does not parse (it is dead-lettered
        inside the span)."""
        if not raw or not isinstance(self.codec, JsonCodec):
            return _UNPARSED
        try:
            return self.codec.parse(raw)
        except DecodeError:
            return _UNPARSED

    async def _process_record(
        self,
        ctx: restate.ObjectContext,
        raw: bytes,
        parsed: Any = _UNPARSED,
        coords: KafkaCoordinates | None = None,
    ) -> Any:
        headers = ctx.request().headers
        coords = coords or KafkaCoordinates.from_headers(headers)
        set_handling(self.binding.name, coords)  # log lines name the binding and record
        redrive_of = self._redrive_of(headers, raw)
        high = await self._high_water(ctx, coords, redrive_of)
        source = source_name(coords.topic, coords.partition)
        if high is not None and coords.offset <= high.get(source, -1):
            # Applied before: a copy the other delivery brought across a hand-over, or a
            # subscription's re-read after a consumer was killed before it committed.
            log.info("dropped %s: at or below the high-water %s", coords.describe(), high)
            self._report(ctx, "redelivered", coords)
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
        invocation = ctx.request().id
        tombstone = not raw and self.binding.format in _EMPTY_IS_TOMBSTONE
        try:
            with tracing.leaf_span("decode") if tracing.enabled() else nullcontext():
                value, event_id, event_type = await self._decode(None if tombstone else raw, parsed)
        except DecodeError as exc:
            error = TOMBSTONE_ERROR if tombstone else "DecodeError"
            await self._dead_letter(ctx, coords, raw, error, str(exc), 1, redrive_of)
            return None
        seen_count = None
        if self.binding.dedupe and event_id is not None:
            seen_count = await _seen_count(ctx)
            if await _in_window(ctx, event_id, seen_count):
                log.info("dropping duplicate event %s at %s", event_id, coords.describe())
                await self._resolved(ctx, coords, redrive_of)  # processed before: done
                self._report(ctx, "deduplicated", coords)
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
        started = time.perf_counter()
        try:
            with tracing.child_span("handler") if tracing.enabled() else nullcontext():
                result = await self.fn(ctx, event if self.wants_event else value)
        except DisconnectedException:
            raise  # the attempt ended, not the handler: nothing to count or dead-letter
        except DropRecord as drop:
            self._ran(ctx, 1, started, failed=False)
            self.attempts.forget(invocation)
            log.info("dropped record at %s: %s: %s", coords.describe(), drop.cause, drop)
            self._report(ctx, "dropped", coords, drop.cause, str(drop))
            return None
        except Exception as exc:
            self._ran(ctx, 1, started, failed=True)
            terminal, internal = causes(exc)
            if internal:
                raise  # a suspension or SDK signal wrapped by user code: the SDK handles it
            failures = self.attempts.failed(invocation)
            if terminal is not None:
                kind = getattr(terminal, "dead_letter_type", "TerminalError")
                message = terminal.message
            elif self.max_attempts is None or failures < self.max_attempts:
                self._report(ctx, "retrying", coords, type(exc).__name__, str(exc))
                raise  # Restate retries with the binding's backoff
            else:
                kind, message = "RetriesExhausted", f"{type(exc).__name__}: {exc}"
            await self._dead_letter(ctx, coords, raw, kind, message, failures, redrive_of)
            self.attempts.forget(invocation)  # after the dead letter is journaled
            return None
        self._ran(ctx, 1, started, failed=False)
        self.attempts.forget(invocation)
        if seen_count is not None and event_id is not None:
            # Only after success: a dead-lettered event must stay eligible for a redrive.
            await _remember(ctx, event_id, seen_count)
        await self._resolved(ctx, coords, redrive_of)
        self._report(ctx, "applied", coords)
        return result

    def _redrive_of(self, headers: Mapping[str, str], body: bytes) -> LetterRef | None:
        """The letter a `dlq redrive` call names; with a signing key, only with the call's
        signature (else a TerminalError: nothing runs, nothing is written)."""
        header = headers.get(REDRIVE_OF_HEADER)
        redrive_of = LetterRef.from_header(header)
        if redrive_of is None:
            return None
        assert header is not None
        why = self.letter_keys.redrive_distrust(self.binding.name, header, headers, body)
        if why is not None:
            log.error("binding %s: refused the redrive of %s: %s", self.binding.name, header, why)
            raise restate.TerminalError(
                f"binding {self.binding.name}: refused the redrive of {redrive_of.describe()}: "
                f"{why}"
            )
        return redrive_of

    def _ran(self, ctx: restate.ObjectContext, records: int, started: float, failed: bool) -> None:
        if observed():
            seconds = time.perf_counter() - started
            invocation = ctx.request().id
            report(HandlerRun(self.binding.name, records, seconds, failed, invocation))

    def _report(
        self,
        ctx: restate.ObjectContext,
        decision: Decision,
        coords: KafkaCoordinates,
        cause: str | None = None,
        message: str | None = None,
    ) -> None:
        if observed():
            invocation = ctx.request().id
            report(Outcome(self.binding.name, decision, coords, cause, message, invocation))
        if tracing.enabled():
            tracing.set_outcome(trace.get_current_span(), decision, cause)

    async def _decode(
        self, raw: bytes | None, parsed: Any = _UNPARSED
    ) -> tuple[Any, str | None, str | None]:
        """(value, event id, event type); None for a tombstone, which is the value None if
        the handler admits it and a DecodeError otherwise. `parsed`: the JSON already parsed
        from `raw`, if it was."""
        if raw is None:
            if self.takes_none:
                return None, None, None
            raise DecodeError(tombstone_message(self.binding))
        if isinstance(self.codec, JsonCodec):
            document = self.codec.parse(raw) if parsed is _UNPARSED else parsed
            data, event_id, event_type = unwrap_cloudevent(document)
            return self.codec.convert(data), event_id, event_type
        needs_io = getattr(self.codec, "needs_io", None)
        if needs_io is not None and needs_io(raw):
            # A schema id not seen yet: the registry lookup blocks, so not on the event loop.
            return await asyncio.to_thread(self.codec.decode, raw), None, None
        return self.codec.decode(raw), None, None

    async def _dead_letter(
        self,
        ctx: restate.ObjectContext,
        coords: KafkaCoordinates,
        raw: bytes,
        error_type: str,
        message: str,
        attempts: int,
        redrive_of: LetterRef | None,
    ) -> None:
        b = self.binding
        where = f"binding {b.name}, {coords.describe()}, invocation {ctx.request().id}"
        if b.dead_letter is None:
            log.error(
                "dropped record (%s): %s: %s; no dead_letter topic set", where, error_type, message
            )
            self._report(ctx, "dropped", coords, error_type, message)
            return
        letter = DeadLetter.of(b.name, coords, raw, error_type, message, attempts, redrive_of)
        published = await self._to_dead_letter_topic(
            ctx,
            coords,
            letter.to_json(),
            DEAD_LETTER_TYPE,
            f"dead-lettering ({where}) to {b.dead_letter!r}",
        )
        log.warning(
            "dead-lettered (%s) to %s[%d]@%d: %s: %s",
            where,
            published.topic,
            published.partition,
            published.offset,
            error_type,
            message,
        )
        self._report(ctx, "dead-lettered", coords, error_type, message)

    async def _to_dead_letter_topic(
        self,
        ctx: restate.ObjectContext,
        coords: KafkaCoordinates,
        record: dict[str, Any],
        event_type: str,
        doing: str,
    ) -> Published:
        """Publish a dead letter or a resolution, durably, retrying until the topic takes it."""
        assert self.binding.dead_letter is not None
        try:
            return await self.publisher.publish(
                ctx,
                self.binding.dead_letter,
                coords.key_text,
                self.letter_keys.signed(record, event_type),
                event_type=event_type,
                retry_forever=True,
            )
        except restate.TerminalError as exc:
            # Not publishable (bad key or value): retry the invocation, blocking the key,
            # rather than complete it and lose the record. `from None`: the SDK would
            # otherwise find the TerminalError as the cause and fail the invocation.
            raise RuntimeError(f"{doing} failed: {exc.message}") from None

    async def _resolved(
        self, ctx: restate.ObjectContext, coords: KafkaCoordinates, redrive_of: LetterRef | None
    ) -> None:
        """A redriven letter went through: say so on the dead-letter topic (`dlq` reads it)."""
        topic = self.binding.dead_letter
        if redrive_of is None or topic is None:
            return
        resolution = Resolution.of(self.binding.name, coords, redrive_of)
        await self._to_dead_letter_topic(
            ctx,
            coords,
            resolution.to_json(),
            RESOLVED_TYPE,
            f"recording the redrive of {redrive_of.describe()} on {topic!r}",
        )
        log.info("redrive of %s resolved %s", redrive_of.describe(), coords.describe())


async def _seen_count(ctx: restate.ObjectContext) -> int:
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


async def _in_window(ctx: restate.ObjectContext, event_id: str, count: int) -> bool:
    at: int | None = await ctx.get(SEEN_PREFIX + event_id, type_hint=int)
    # The age check keeps lookups exact should the window shrink (entries left behind).
    return at is not None and at >= count - DEDUPE_WINDOW


async def _remember(ctx: restate.ObjectContext, event_id: str, count: int) -> None:
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
        original = current.fn if isinstance(current, BoundHandler) else current
        user_fn: Callable[[Any, Any], Awaitable[Any]] = original
        if b.cluster not in publishers:
            publishers[b.cluster] = Publisher(spec.clusters[b.cluster].properties)
        wrapper: BoundHandler
        if b.batch is not None:
            from restate_stream.batch.handler import BATCH_IDEMPOTENCY_RETENTION, batch_handler

            wrapper = batch_handler(b, user_fn, publishers[b.cluster])
            retention = BATCH_IDEMPOTENCY_RETENTION
        else:
            value_type, wants_event = input_type_of(user_fn)
            codec = codec_for(
                b.format, without_none(value_type), b.schema, b.avro_wire, b.schema_registry
            )
            wrapper = BoundHandler(
                b,
                user_fn,
                codec,
                publishers[b.cluster],
                wants_event,
                admits_none(value_type),
                keeps_high_water=_exclusive_object(service, b.handler),
            )
            # `dlq redrive` calls this handler with an idempotency key per dead letter: keep
            # those results long enough that a redrive weeks later still recognises what it sent.
            retention = REDRIVE_WINDOW
        _sdk.take_raw_input(
            handler,
            wrapper,
            idempotency_retention=retention,
            retry_policy=_retry_policy(b, processes),
        )
        wrapped.append(f"{b.service}/{b.handler}")
    return wrapped

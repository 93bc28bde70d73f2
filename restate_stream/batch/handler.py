"""The object side of a batched binding: one invocation, many records of one key.

Before the user's handler runs, records at or below the object's high-water offset for their
source partition are dropped (they were applied by an earlier invocation: a redelivery), and
each remaining record is decoded in the binding's format; one that cannot be decoded goes to
the dead-letter topic alone. After the handler, the new high-water offsets are written in the
same invocation, so they commit together with the handler's state changes. A TerminalError or
exhausted retries dead-letter every record passed to the handler, and the high-water still
advances: the key moves on. Decoding, failures and dead letters are every bound handler's
(runtime/bound_base.py): this handler is the per-record one's sibling.
A handler typed `list[T]` takes the values alone. When a body's records all come from one
partition past the high-water and their values came parsed as T (a JSON binding's dicts, or
Any), the values are the body's own parsed list and no record or event is built: they are
built only if a failure, a rejection or an outcome observer asks for their coordinates.
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
import operator
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple, overload

import restate
from opentelemetry import trace

from connectors.gc_pause import collection_paused
from restate_stream.batch.wire import (
    Columns,
    NewerWireVersion,
    WireError,
    WireRecord,
    decode_body,
    records_of,
)
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
from restate_stream.runtime.formats.cloudevents import ENVELOPE_MARK
from restate_stream.runtime.formats.json import UNPARSED
from restate_stream.runtime.high_water import high_water_state, source_name
from restate_stream.runtime.logs import set_handling
from restate_stream.runtime.outcomes import (
    AppliedRecords,
    counts_observed,
    each_applied_observed,
    observed,
    report,
)
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


# `built`'s two steps, called inline per event (a call less per record).
_new, _set = object.__new__, object.__setattr__

# A wire record's fields, read in C over a whole batch (WireRecord is a tuple).
_topic_of, _partition_of, _offset_of, _source_of = (
    itemgetter(0),
    itemgetter(1),
    itemgetter(2),
    itemgetter(0, 1),
)
_key_of, _value_of, _headers_of, _parsed_of = (
    itemgetter(4),
    itemgetter(5),
    itemgetter(6),
    itemgetter(7),
)


_Decoded = tuple[Any, str | None, str | None]  # (value, event id, event type)


class _ObjectKeys(dict[bytes | None, str]):
    """A record key's object key, made once per batch: a partition's records share few keys
    (a dict: functools.cache per invocation cost more than a small batch's whole per-record
    work). Looked up in C (`__getitem__`); only a key not seen yet calls back to Python."""

    def __missing__(self, raw_key: bytes | None) -> str:
        key = self[raw_key] = object_key_for(raw_key)
        return key


class _Building(NamedTuple):
    """What building a batch's events keeps from one record to the next."""

    key: str | None  # the object key (per: key), else each record's, from:
    object_keys: _ObjectKeys
    times: dict[int, datetime]  # the batch's timestamps as datetimes (_coordinates)


def _all_unconverted(records: list[WireRecord], unconverted: type) -> bool:
    """Whether every record's value came parsed and passes as it is (`unconverted`: the type
    it must have, or object for any), none a CloudEvents envelope: what `_ready_events` takes
    inline record by record, checked here over whole columns in C."""
    parsed = list(map(_parsed_of, records))
    return UNPARSED not in parsed and _values_unconverted(parsed, unconverted)


def _values_unconverted(values: list[Any], unconverted: type) -> bool:
    """Whether parsed values pass as they are (`_all_unconverted`), checked in C."""
    types = set(map(type, values))
    if unconverted is not object and types != {unconverted}:
        return False
    if dict not in types:
        return True
    # Only an all-dict batch is checked in C; a mix of dicts and other values goes record by
    # record (each dict asked there).
    return types == {dict} and not any(map(operator.contains, values, repeat(ENVELOPE_MARK)))


def _events_by_column(
    records: list[WireRecord], context: _Building, per_key: bool
) -> list[KafkaEvent[Any]]:
    """The events of records that all pass as they are (`_all_unconverted`), each built as
    `_ready_events` builds one, from columns read in C: each event's fields a dict display
    (built presized in one step: 2.3x faster than `dict(zip(names, row))`), the events
    themselves and their `__dict__` set by map."""
    key, object_keys, times = context
    n = len(records)
    if per_key:
        keys: Iterable[str | None] = repeat(key, n)
    else:
        keys = map(object_keys.__getitem__, map(_key_of, records))
    # An inline value's raw bytes are never empty: `value_bytes or b""` is the value itself.
    # The same fields as `_ready_events` gives an event.
    fields = [
        {"value": value, "key": k, "raw": raw, "headers": headers, "_wire": r, "_times": times}
        for value, k, raw, headers, r in zip(
            map(_parsed_of, records),
            keys,
            map(_value_of, records),
            map(_headers_of, records),
            records,
            strict=True,
        )
    ]
    built_events: list[KafkaEvent[Any]] = list(map(_new, repeat(_BatchEvent, n)))
    deque(map(_set, built_events, repeat("__dict__"), fields), maxlen=0)
    return built_events


class _BatchEvent(DeferredEvent[Any]):
    """A batched record's event: coordinates from its wire record when first asked."""

    def _build_coordinates(self) -> KafkaCoordinates:
        fields = self.__dict__
        return _coordinates(fields["_wire"], fields["_times"])


class _ColumnEvent(DeferredEvent[Any]):
    """A batched record's event built from the body's columns (`_events_of_columns`): its
    raw bytes and its coordinates from the columns when first asked (most handlers ask for
    neither; building every record and slicing its raw bytes first was about 40% of an events
    invocation in memory: benchmarks/batch_decode_cost.py --worker-heap)."""

    @property
    def raw(self) -> bytes:
        fields = self.__dict__
        raw: bytes | None = fields.get("raw")
        if raw is None:
            raw = fields["raw"] = fields["_columns"].raw(fields["_at"])
        return raw

    @raw.setter
    def raw(self, value: bytes) -> None:
        self.__dict__["raw"] = value

    def _build_coordinates(self) -> KafkaCoordinates:
        fields = self.__dict__
        return _coordinates(fields["_columns"].record(fields["_at"]), fields["_times"])


def _events_of_columns(
    columns: Columns, context: _Building, per_key: bool
) -> list[KafkaEvent[Any]]:
    """The events of a body's columns whose values all pass as they are (`_values_unconverted`),
    as `_events_by_column` builds them from records, without the records: each event's fields
    a dict display, the events and their `__dict__` set by map. Column bodies carry no headers."""
    key, object_keys, times = context
    n = len(columns)
    keys: Iterable[str | None] = (
        repeat(key, n) if per_key else map(object_keys.__getitem__, columns.keys())
    )
    fields = [
        {"value": value, "key": k, "headers": (), "_columns": columns, "_at": at, "_times": times}
        for at, value, k in zip(range(n), columns.values, keys, strict=True)
    ]
    built_events: list[KafkaEvent[Any]] = list(map(_new, repeat(_ColumnEvent, n)))
    deque(map(_set, built_events, repeat("__dict__"), fields), maxlen=0)
    return built_events


class _EventsWhenAsked(Sequence[KafkaEvent[Any]]):
    """The events of a values handler's batch, built only when asked: for a failure (dead
    letters, retries), a rejection, or an outcome observer. Otherwise the handler's values
    are all it costs: the parsed body's own list."""

    def __init__(self, columns: Columns, context: _Building, per_key: bool) -> None:
        self._columns, self._context, self._per_key = columns, context, per_key
        self._built: list[KafkaEvent[Any]] | None = None

    def _events(self) -> list[KafkaEvent[Any]]:
        if self._built is None:
            with collection_paused():
                self._built = _events_of_columns(self._columns, self._context, self._per_key)
        return self._built

    def __len__(self) -> int:
        return len(self._columns)

    @overload
    def __getitem__(self, index: int) -> KafkaEvent[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[KafkaEvent[Any]]: ...
    def __getitem__(self, index: int | slice) -> KafkaEvent[Any] | Sequence[KafkaEvent[Any]]:
        return self._events()[index]

    def __iter__(self) -> Iterator[KafkaEvent[Any]]:
        return iter(self._events())


class BatchBoundHandler(BoundHandler):
    """The bound handler of a batched binding: its input is a batch body, and the user's
    function takes a list of events, or of their values (`list[T]`)."""

    batched = True
    idempotency_retention = BATCH_IDEMPOTENCY_RETENTION

    async def __call__(self, ctx: restate.ObjectContext, raw: bytes) -> Any:
        if not tracing.enabled():  # asked once per invocation: it reads the environment
            return await self._process(ctx, raw, False)
        with tracing.batch_span(
            self.binding.name,
            invocation_id=ctx.request().id,
            object_key=ctx.key(),
            restate_headers=ctx.request().headers,
        ):
            return await self._process(ctx, raw, True)

    async def _process(self, ctx: restate.ObjectContext, raw: bytes, traced: bool) -> Any:
        set_handling(self.binding.name, None)  # log lines name the binding
        try:
            decoded = decode_body(raw)
        except NewerWireVersion as exc:
            # Retried (then paused, as any failing invocation): a worker that reads it runs it.
            raise NewerWireVersion(f"binding {self.binding.name}: {exc}") from None
        except WireError as exc:
            # Not a body restate-stream's consumer writes: fail visibly, change nothing.
            raise restate.TerminalError(f"binding {self.binding.name}: {exc}") from None
        if traced:
            trace.get_current_span().set_attribute("messaging.batch.message_count", len(decoded))
        # Signed when signing is on: only then may the records pass the high-water check.
        redrive_of = self.sink.redrive_of(ctx.request().headers, raw)
        if redrive_of is not None:
            return await self._redrive(ctx, records_of(decoded), redrive_of)
        state_key = high_water_state(self.binding.name)
        high: dict[str, int] = await ctx.get(state_key) or {}
        tops = None
        if isinstance(decoded, Columns):
            tops = await self._at_once(ctx, decoded, high)
        if tops is None:
            fresh, tops = self._past_high_water(ctx, records_of(decoded), high)
            events = await self._events(ctx, fresh, None)
            if events:
                await self._handle(ctx, self._input(events), events, None)
        for (topic, partition), top in tops.items():
            name = source_name(topic, partition)
            high[name] = max(high.get(name, -1), top)
        if tops:
            ctx.set(state_key, high)
        return None

    async def _at_once(
        self, ctx: restate.ObjectContext, columns: Columns, high: dict[str, int]
    ) -> dict[tuple[str, int], int] | None:
        """A batch handled straight from the body's columns: when all its records come from
        one source, past its high-water (no redelivery), and their parsed values pass as they
        are. No record is built: a handler of events gets events built from the columns
        (`_events_of_columns`), a handler of values the body's parsed list itself, its events
        built only if a failure, a rejection or an observer needs them. The source's new
        high-water; None if the batch takes the record-by-record way instead."""
        source = columns.one_source()
        json_codec = self.json_codec
        if source is None or json_codec is None or json_codec.unconverted is None:
            return None
        offsets = columns.offsets
        if min(offsets) <= high.get(source_name(*source), -1):
            return None
        if not _values_unconverted(columns.values, json_codec.unconverted):
            return None
        context = _Building(ctx.key(), _ObjectKeys(), {})
        if self.wants_event:
            with collection_paused():
                events = _events_of_columns(columns, context, self._per_key)
            await self._handle(ctx, events, events, None)
        else:
            when_asked = _EventsWhenAsked(columns, context, self._per_key)
            await self._handle(ctx, columns.values, when_asked, None)
        return {source: max(offsets)}

    @property
    def _per_key(self) -> bool:
        """One object per record key (else per source partition: records of many keys)."""
        return self.binding.batch is None or self.binding.batch.per == "key"

    def _input(self, events: list[KafkaEvent[Any]]) -> list[Any]:
        """What the user's function takes: the events, or their values."""
        return events if self.wants_event else [event.value for event in events]

    def _past_high_water(
        self, ctx: restate.ObjectContext, records: list[WireRecord], high: dict[str, int]
    ) -> tuple[list[WireRecord], dict[tuple[str, int], int]]:
        """The records past the object's high-water for their source, and each source's
        highest offset among them. Per source, not per record: a batch holds few sources
        (most often one) and many records, so a body of one source wholly past its
        high-water (no redelivery) is told by C-level passes (map, min, max)."""
        if len(set(map(_topic_of, records))) == 1 == len(set(map(_partition_of, records))):
            source: tuple[str, int] = records[0].source
            offsets = list(map(_offset_of, records))
            if min(offsets) > high.get(source_name(*source), -1):
                return records, {source: max(offsets)}
        floors = {s: high.get(source_name(*s), -1) for s in set(map(_source_of, records))}
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
        tops: dict[tuple[str, int], int] = {}
        for r in fresh:
            source = (r.topic, r.partition)
            if r.offset > tops.get(source, -1):
                tops[source] = r.offset
        return fresh, tops

    async def _redrive(
        self, ctx: restate.ObjectContext, records: list[WireRecord], redrive_of: LetterRef
    ) -> None:
        events = await self._events(ctx, records, redrive_of)
        applied = await self._handle(ctx, self._input(events), events, redrive_of) if events else []
        for event in applied:
            await self.sink.resolved(ctx, event.coordinates, redrive_of)

    async def _events(
        self, ctx: restate.ObjectContext, records: list[WireRecord], redrive_of: LetterRef | None
    ) -> list[KafkaEvent[Any]]:
        """The records decoded; one that cannot be is dead-lettered alone. Built with garbage
        collection paused (`_ready_events`), which stops at a record that needs I/O: one
        whose decoding waits for the schema registry, or that goes to the dead-letter topic."""
        events: list[KafkaEvent[Any]] = []
        context = _Building(ctx.key(), _ObjectKeys(), {})
        at, n = 0, len(records)
        waited: _Decoded | None = None  # records[at] decoded (it needed I/O)
        while at < n:
            with collection_paused():  # no await inside
                at, failure = self._ready_events(records, at, waited, events, context)
            waited = None
            if at == n:
                break
            r = records[at]
            if failure is None:
                try:
                    waited = await self.decode(r.value, r.parsed)
                    continue
                except DecodeError as exc:
                    failure = exc
            error = TOMBSTONE_ERROR if r.value is None else "DecodeError"
            coords = _coordinates(r, context.times)
            await self.sink.dead_letter(
                ctx, coords, r.value or b"", error, str(failure), 1, redrive_of
            )
            at += 1
        return events

    def _ready_events(
        self,
        records: list[WireRecord],
        at: int,
        waited: _Decoded | None,
        events: list[KafkaEvent[Any]],
        context: _Building,
    ) -> tuple[int, DecodeError | None]:
        """Append the events of records[at:] until one needs I/O: its index, with the
        DecodeError if it goes to the dead-letter topic, None if its decoding waits
        (len(records) when none did). `waited`: records[at] decoded already. The per-record
        work of a batch: a value that came parsed and needs no conversion (a handler of
        `dict`/`Any`, not a CloudEvents envelope) is taken as it is, inline; the rest goes
        through the codec in plain calls. Events are built without their dataclass __init__
        (`built`), their event id and type left to the class's None unless an envelope gave
        them."""
        append = events.append
        per_key = self._per_key
        key, object_keys, times = context
        json_codec = self.json_codec
        # The type a parsed value passes through as (`object`: any); None: always convert.
        unconverted = json_codec.unconverted if json_codec is not None else None
        any_type = unconverted is object
        if at == 0 and unconverted is not None and _all_unconverted(records, unconverted):
            events.extend(_events_by_column(records, context, per_key))
            return len(records), None
        decoded_now = self.decoded_now
        for i in range(at, len(records)):
            r = records[i]
            _, _, _, _, key_bytes, value_bytes, headers, parsed = r
            if not per_key:
                key = object_keys[key_bytes]
            if (
                parsed is not UNPARSED
                and (any_type or type(parsed) is unconverted)
                and not (type(parsed) is dict and ENVELOPE_MARK in parsed)
            ):
                value, event_id, event_type = parsed, None, None
            else:
                decoded: _Decoded | None = waited  # records[at]'s, if it waited
                if decoded is not None:
                    waited = None
                else:
                    try:
                        decoded = decoded_now(value_bytes, parsed)
                    except DecodeError as exc:
                        return i, exc  # dead-lettered by the caller
                    if decoded is None:
                        return i, None
                value, event_id, event_type = decoded
            fields = {"value": value, "key": key, "raw": value_bytes or b"", "headers": headers,
                      "_wire": r, "_times": times}  # fmt: skip
            if event_id is not None or event_type is not None:
                fields["event_id"], fields["event_type"] = event_id, event_type
            event = _new(_BatchEvent)
            _set(event, "__dict__", fields)  # `built`, inline: one call less per record
            append(event)
        return len(records), None

    async def _handle(
        self,
        ctx: restate.ObjectContext,
        arg: list[Any],
        events: Sequence[KafkaEvent[Any]],
        redrive_of: LetterRef | None,
    ) -> Sequence[KafkaEvent[Any]]:
        """Run the user's function on `arg` (`events`, or their values, in order); the events
        it applied (none if they were dead-lettered instead; all but those it rejected
        otherwise). A rejection names what the function was given: an event, or a value
        (told apart by identity)."""
        # Values are paired with their events by place: the function gets its own list, so
        # sorting or emptying it changes neither the pairing nor what a failure dead-letters.
        given = arg if self.wants_event else list(arg)
        applied, result = await self.call_user(ctx, given, events, redrive_of)
        if not applied:
            return []
        why_not = (
            {id(item): why for item, why in result.rejected}
            if isinstance(result, RejectedRecords)
            else {}
        )
        each_applied = each_applied_observed()
        if not why_not and not each_applied:
            self._count_applied(ctx, len(events))
            return events  # every one applied; their coordinates stay unbuilt
        taken = []
        for item, event in zip(arg, events, strict=True):
            coords = event.coordinates
            why = why_not.get(id(item))
            if why is None:
                taken.append(event)
                if each_applied:
                    self.report(ctx, "applied", coords, each_applied=True)
            elif isinstance(why, DropRecord):
                log.info("dropped record at %s: %s: %s", coords.describe(), why.cause, why)
                self.report(ctx, "dropped", coords, why.cause, str(why))
            else:
                error_type, message = why.dead_letter_type, why.message
                await self.sink.dead_letter(
                    ctx, coords, event.raw, error_type, message, 1, redrive_of
                )
        self._count_applied(ctx, len(taken))
        return taken

    def _count_applied(self, ctx: restate.ObjectContext, records: int) -> None:
        if records and counts_observed():
            binding = self.binding
            report(AppliedRecords(binding.name, binding.topic, records, ctx.request().id))


def batch_handler(binding: Binding, fn: UserFunction, publisher: Publisher) -> BatchBoundHandler:
    """The wrapper for `fn`, which must take `list[KafkaEvent[T]]` or `list[T]`
    (HandlerSignatureError, a ValueError, otherwise)."""
    return BatchBoundHandler.of(binding, fn, publisher)

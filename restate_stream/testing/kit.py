"""BindingsKit: a bindings file's handlers run in memory, with the production wrapper.

The kit binds the app's services to the file as the worker does (`bind`: decoding, dead
letters, dedupe, retries, batches and high-water offsets are the same code), but with an
in-memory context per object (state kept between deliveries) and a recording publisher. A
delivery is a record handed to the binding of its topic; it returns what happened to it:

    kit = BindingsKit.load("bindings.yaml", [twin])
    delivery = await kit.deliver("driver-updates", {"driver_id": "d1", "seq": 1}, key="d1")
    assert delivery.decision == "applied"
    assert kit.state("driver-digital-twin", "d1")["seen_seqs"] == [1]

    bad = await kit.deliver("driver-updates", b"not json", key="d1")
    assert bad.decision == "dead-lettered" and bad.dead_letters[0].error.type == "DecodeError"

No engines, no network: what Restate would do between attempts the kit does itself. A
handler that raises a retryable error is retried with the same invocation id (each attempt
starts from the state and publishes before the first, as Restate's journal would have it),
up to the binding's `retry.max_attempts` (then the wrapper dead-letters it, as in
production) or `max_attempts` given to the kit. Calls to other handlers are recorded, and a
call's answer comes from `responses` (see `MemoryContext`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from restate_stream.batch.objects import batch_object_key
from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.bindings import Binding, BindingsFile, load_bindings
from restate_stream.errors import ConfigurationError
from restate_stream.runtime import _sdk
from restate_stream.runtime.bound import AnyService, bind
from restate_stream.runtime.dead_letter import DEAD_LETTER_TYPE, DeadLetter
from restate_stream.runtime.event import Headers, object_key_for
from restate_stream.runtime.formats import codec_for
from restate_stream.runtime.outcomes import Decision, Event, Outcome, observe
from restate_stream.runtime.provided import provided_services
from restate_stream.runtime.publisher import Publisher, publishing_to
from restate_stream.tables import objects as table_objects
from restate_stream.testing.memory import (
    Call,
    MemoryContext,
    MemoryPublisher,
    Sent,
    as_context,
    kafka_headers,
)
from restate_stream.windows.objects import CLOSE

BOOKKEEPING_PREFIX = "restate-stream."  # high-water offsets, the dedupe window
DEFAULT_MAX_ATTEMPTS = 10  # a binding without retry.max_attempts retries forever in Restate


class KitError(ConfigurationError, ValueError):
    pass


@dataclass(frozen=True)
class KitRecord:
    """A record to deliver: `value` is encoded in the binding's format unless `raw` is given;
    `tombstone=True` delivers a null value. Offsets count up per partition unless `offset`
    is given (to deliver a record again, as after a crash)."""

    value: Any = None
    key: str | bytes | None = None
    raw: bytes | None = None
    tombstone: bool = False
    partition: int = 0
    headers: Headers = ()
    timestamp: datetime | None = None
    offset: int | None = None


@dataclass
class Delivery:
    """What happened to the records of one delivery (one invocation; a batch: per object)."""

    binding: str
    object_key: str
    attempts: int
    outcomes: list[Outcome]
    published: list[Sent]  # records the handler published (dead letters not included)
    dead_letters: list[DeadLetter]
    calls: list[Call]  # calls and sends to other handlers
    error: BaseException | None = None  # the last attempt's error if it was still retrying

    @property
    def decision(self) -> Decision:
        """The decision for the record (all records of a batch must share it)."""
        decisions = {o.decision for o in self.outcomes}
        if len(decisions) != 1:
            raise KitError(
                f"binding {self.binding}, object {self.object_key!r}: the records had "
                f"different outcomes {sorted(decisions)}; read `outcomes` instead"
            )
        return decisions.pop()

    @property
    def decisions(self) -> list[Decision]:
        return [o.decision for o in self.outcomes]


@dataclass
class _Object:
    context: MemoryContext
    published: list[Sent] = field(default_factory=list)


class BindingsKit:
    def __init__(
        self,
        spec: BindingsFile,
        services: Iterable[AnyService],
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.spec = spec
        self.publisher = MemoryPublisher()
        self.max_attempts = max_attempts
        publishers: dict[str, Publisher] = {name: self.publisher for name in spec.clusters}
        services = list(services)
        # The window and table bindings' objects, as the worker serves them.
        provided = provided_services(spec, services, publishers)
        self.services = {s.name: s for s in [*services, *provided]}
        bind(self.services.values(), spec, publishers)
        self._objects: dict[tuple[str, str], MemoryContext] = {}
        self._offsets: dict[tuple[str, int], itertools.count[int]] = {}
        self._invocations = itertools.count(1)
        self._timers: list[Call] = []  # windows' close timers, not fired yet
        # Calls answered by the test, for every object: "Service/handler" -> value or function.
        # A table's reads are answered from its objects' state.
        self.responses: dict[str, Any] = {
            f"{b.name}/{table_objects.GET}": self._table_reader(b.name)
            for b in spec.bindings
            if b.table
        }

    @classmethod
    def load(
        cls,
        path: str | Path,
        services: Iterable[AnyService],
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> BindingsKit:
        return cls(load_bindings(path, env), services, **options)

    # --- inspecting -------------------------------------------------------------------------

    def state(self, service: str, key: str, *, bookkeeping: bool = False) -> dict[str, Any]:
        """The object's state as Restate would hold it (JSON values); {} if never written.
        restate-stream's own entries (high-water offsets, the dedupe window: names starting
        with `restate-stream.`) only with `bookkeeping`: the app's state is what tests read."""
        context = self._objects.get((service, key))
        state = copy.deepcopy(context.state) if context is not None else {}
        if bookkeeping:
            return state
        return {name: v for name, v in state.items() if not name.startswith(BOOKKEEPING_PREFIX)}

    def published(self, topic: str | None = None) -> list[Sent]:
        """Every record published so far (to `topic`), dead letters included."""
        return [s for s in self.publisher.sent if topic is None or s.topic == topic]

    def dead_letters(self, topic: str | None = None) -> list[DeadLetter]:
        dead_letter_topics = {b.dead_letter for b in self.spec.bindings if b.dead_letter}
        return [
            DeadLetter.from_json(s.value)
            for s in self.publisher.sent
            if s.topic in dead_letter_topics and (topic is None or s.topic == topic)
            if s.event_type == DEAD_LETTER_TYPE
        ]

    def table(self, name: str, key: str) -> Any:
        """Table binding `name`'s value for `key` (None: never written, or deleted)."""
        return self.state(name, key).get(table_objects.VALUE)

    def _table_reader(self, name: str) -> Any:
        def read(key: str | None, _: Any) -> Any:
            return self.table(name, key or "")

        return read

    def pending_timers(self) -> list[Call]:
        """The windows' close timers set and not fired yet (each a delayed one-way call)."""
        return list(self._timers)

    async def fire_timers(self) -> list[Delivery]:
        """Fire every pending window timer, as if its time had come (a window still open
        is emitted and closed; one closed already is left alone); one Delivery each."""
        fired, self._timers = self._timers, []
        return [await self._call(t.service, t.key or "", t.handler, t.arg) for t in fired]

    async def _call(self, service: str, key: str, handler: str, arg: Any) -> Delivery:
        """Run a plain (not bound) handler of an object once, in its in-memory context."""
        context = self._objects.setdefault((service, key), MemoryContext(key))
        context.invocation_id = f"inv_kit_{next(self._invocations)}"
        context.headers, context.calls, context.responses = {}, [], self.responses
        sent = len(self.publisher.sent)
        fn = _sdk.handler_function(_sdk.registered_handler(self.services[service], handler))
        with publishing_to(self.publisher):
            await fn(as_context(context), arg)
        self._keep_timers(context.calls)
        new = self.publisher.sent[sent:]
        return Delivery(service, key, 1, [], new, [], list(context.calls))

    def _keep_timers(self, calls: list[Call]) -> None:
        windows = {b.name for b in self.spec.bindings if b.window is not None}
        self._timers += [c for c in calls if c.service in windows and c.handler == CLOSE]

    # --- delivering -------------------------------------------------------------------------

    async def deliver(
        self,
        topic: str,
        value: Any = None,
        *,
        key: str | bytes | None = None,
        raw: bytes | None = None,
        tombstone: bool = False,
        partition: int = 0,
        headers: Headers = (),
        timestamp: datetime | None = None,
        offset: int | None = None,
        binding: str | None = None,
    ) -> Delivery:
        """Hand one record to the binding of `topic` (a batched binding gets a one-record
        batch); what happened to it."""
        record = KitRecord(value, key, raw, tombstone, partition, headers, timestamp, offset)
        (delivery,) = await self.deliver_batch(topic, [record], binding=binding)
        return delivery

    async def deliver_batch(
        self, topic: str, records: Sequence[KitRecord], *, binding: str | None = None
    ) -> list[Delivery]:
        """Hand records to the binding of `topic`: a batched binding gets them as one batch
        (one invocation per object, as its delivery would group them); an unbatched one
        gets them one by one. One Delivery per invocation, in order."""
        b = self._binding(topic, binding)
        encoded = [self._wire(b, r) for r in records]
        if b.batch is None:
            return [await self._invoke(b, object_key_for(w.key), w, [w]) for w in encoded]
        by_object: dict[str, list[WireRecord]] = {}
        for w in encoded:
            obj = batch_object_key(b.batch.per, w.topic, w.partition, w.key)
            by_object.setdefault(obj, []).append(w)
        return [await self._invoke(b, obj, ws[0], ws) for obj, ws in by_object.items()]

    def _binding(self, topic: str, name: str | None) -> Binding:
        candidates = [
            b
            for b in self.spec.bindings
            if b.topic == topic and (name is None or b.name == name) and not b.paused
        ]
        if len(candidates) != 1:
            found = ", ".join(b.name for b in candidates) or "none"
            declared = ", ".join(sorted({b.topic for b in self.spec.bindings}))
            raise KitError(
                f"topic {topic!r}: expected exactly one active binding"
                f"{f' named {name!r}' if name else ''}, found {found} (the file binds: "
                f"{declared}); pass binding=NAME to pick one"
            )
        (b,) = candidates
        if b.service not in self.services:
            raise KitError(
                f"binding {b.name}: service {b.service!r} is not among the services given "
                f"to the kit ({', '.join(self.services) or 'none'})"
            )
        return b

    def _wire(self, b: Binding, r: KitRecord) -> WireRecord:
        offsets = self._offsets.setdefault((b.topic, r.partition), itertools.count())
        offset = next(offsets) if r.offset is None else r.offset
        key = r.key.encode() if isinstance(r.key, str) else r.key
        if r.tombstone:
            value: bytes | None = None
        elif r.raw is not None:
            value = r.raw
        else:
            codec = codec_for(b.format, Any, b.schema, b.avro_wire, b.schema_registry)
            value = codec.encode(r.value)
        ts = r.timestamp or datetime.now(UTC)
        millis = int(ts.timestamp() * 1000)
        return WireRecord(b.topic, r.partition, offset, millis, key, value, r.headers)

    async def _invoke(
        self, b: Binding, object_key: str, first: WireRecord, records: list[WireRecord]
    ) -> Delivery:
        context = self._objects.setdefault((b.service, object_key), MemoryContext(object_key))
        context.invocation_id = f"inv_kit_{next(self._invocations)}"
        if b.batch is None:
            context.headers = kafka_headers(
                first.topic,
                partition=first.partition,
                offset=first.offset,
                key=first.key,
                timestamp=datetime.fromtimestamp((first.timestamp_ms or 0) / 1000, UTC),
                subscription_id="sub_kit",
            )
            body = first.value if first.value is not None else b""
        else:
            context.headers = {}
            body = encode_batch(records, json_values=b.format == "json")
        context.responses = self.responses
        fn = _sdk.handler_function(_sdk.registered_handler(self.services[b.service], b.handler))
        outcomes: list[Outcome] = []

        def mine(event: Event) -> None:
            if isinstance(event, Outcome) and event.invocation_id == context.invocation_id:
                outcomes.append(event)

        # The handler's own Publisher objects publish to the kit's recorder, not a broker.
        with publishing_to(self.publisher):
            stop = observe(mine)
            attempts = 0
            error: BaseException | None = None
            try:
                while True:
                    attempts += 1
                    state, sent = copy.deepcopy(context.state), len(self.publisher.sent)
                    context.calls = []
                    outcomes.clear()
                    try:
                        await fn(as_context(context), body)
                        error = None
                        break
                    except Exception as exc:
                        # Restate would retry from the journal: this attempt's effects are undone
                        # and the handler runs again, as the next attempt of the same invocation.
                        context.state = state
                        del self.publisher.sent[sent:]
                        error = exc
                        if attempts >= self.max_attempts:
                            break
            finally:
                stop()
        self._keep_timers(context.calls)
        new = self.publisher.sent[sent:]
        letters = [s for s in new if s.topic == b.dead_letter]
        return Delivery(
            binding=b.name,
            object_key=object_key,
            attempts=attempts,
            outcomes=list(outcomes),
            published=[s for s in new if s.topic != b.dead_letter],
            dead_letters=[
                DeadLetter.from_json(s.value) for s in letters if s.event_type == DEAD_LETTER_TYPE
            ],
            calls=list(context.calls),
            error=error,
        )

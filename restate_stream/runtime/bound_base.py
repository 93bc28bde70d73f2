"""What every bound handler shares, per-record (runtime/bound.py) or batched (batch/handler.py).

A bound handler stands between the input Restate delivers and the user's function a binding
names: it decodes in the binding's format into the type the function declares
(runtime/signature.py), runs the function, and classifies a failure (runtime/failures.py:
retried, dead-lettered or passed on) and sends failed records to the binding's dead-letter
topic (runtime/dead_letter_sink.py). The two kinds differ only in their input (one record's
bytes, or a batch body) and what they keep in the object's state (the dedupe window, the
high-water offsets).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from datetime import timedelta
from typing import Any, ClassVar, Self

import restate
from opentelemetry import trace

from restate_stream.bindings import Binding
from restate_stream.runtime._sdk import DisconnectedException
from restate_stream.runtime.dead_letter import LetterRef
from restate_stream.runtime.dead_letter_sink import DeadLetterSink, log
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent
from restate_stream.runtime.failures import FailurePolicy, RejectedRecords
from restate_stream.runtime.formats import (
    Codec,
    DecodeError,
    JsonCodec,
    codec_for,
    unwrap_cloudevent,
)
from restate_stream.runtime.formats.json import UNPARSED
from restate_stream.runtime.outcomes import (
    Decision,
    HandlerRun,
    Outcome,
    Retrying,
    observed,
    report,
)
from restate_stream.runtime.publisher import Publisher
from restate_stream.runtime.signature import HandlerSignatureError, handler_input, input_problem
from restate_stream.telemetry import tracing

AnyService = restate.Service | restate.VirtualObject | restate.Workflow
TOMBSTONE_ERROR = "Tombstone"

# The user's function: (ctx, its input) -> its result.
UserFunction = Callable[[Any, Any], Awaitable[Any]]


def tombstone_message(binding: Binding) -> str:
    return (
        f"tombstone (null value): the handler {binding.service}/{binding.handler}'s type does "
        "not admit None; declare KafkaEvent[T | None] to receive deletes"
    )


class BoundHandler(ABC):
    """The base of the bound handlers: decoding, running the user's function, failures."""

    batched: ClassVar[bool]  # the input is a batch of records (a list of events)
    idempotency_retention: ClassVar[timedelta]  # how long Restate keeps a call's result
    # Exceptions of the user's function that drop its records on purpose (DropRecord).
    droppable: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(
        self,
        binding: Binding,
        fn: UserFunction,
        codec: Codec,
        publisher: Publisher,
        wants_event: bool = True,
        takes_none: bool = False,
    ) -> None:
        self.binding = binding
        self.fn = fn
        self.codec = codec
        self.wants_event = wants_event
        self.takes_none = takes_none  # the handler's type admits None: it gets tombstones
        self.publisher = publisher
        self.sink = DeadLetterSink(binding, publisher, self.report)
        retry = binding.retry
        self.failures = FailurePolicy(retry.max_attempts if retry and retry.max_attempts else None)
        self.json_codec = codec if isinstance(codec, JsonCodec) else None

    @classmethod
    def of(cls, binding: Binding, fn: UserFunction, publisher: Publisher) -> Self:
        """The wrapper for `fn` as its input hint declares it (runtime/signature.py);
        HandlerSignatureError if the hint does not fit this kind of handler."""
        declared = handler_input(fn, batched=cls.batched)
        if declared is None:
            problem = input_problem(fn, batched=cls.batched)
            raise HandlerSignatureError(
                f"binding {binding.name}: handler {binding.service}/{binding.handler} is "
                f"{'batched' if cls.batched else 'bound'}, so {problem}"
            )
        codec = codec_for(
            binding.format,
            declared.value_type,
            binding.schema,
            binding.avro_wire,
            binding.schema_registry,
        )
        return cls(binding, fn, codec, publisher, declared.wants_event, declared.takes_none)

    @abstractmethod
    async def __call__(self, ctx: restate.ObjectContext, raw: bytes) -> Any:
        """Handle one invocation's input (the raw bytes Restate delivers)."""

    @property
    def max_attempts(self) -> int | None:
        return self.failures.max_attempts

    def from_json(self, raw: bytes, parsed: Any = UNPARSED) -> tuple[Any, str | None, str | None]:
        """(value, event id, event type) of a JSON record, in a plain call (the fast path);
        `parsed`: the document already parsed from `raw`, if it was."""
        assert self.json_codec is not None
        document = self.json_codec.parse(raw) if parsed is UNPARSED else parsed
        data, event_id, event_type = unwrap_cloudevent(document)
        return self.json_codec.convert(data), event_id, event_type

    async def decode(
        self, raw: bytes | None, parsed: Any = UNPARSED
    ) -> tuple[Any, str | None, str | None]:
        """(value, event id, event type); None for a tombstone, which is the value None if
        the handler admits it and a DecodeError otherwise."""
        decoded = self.decoded_now(raw, parsed)
        if decoded is None:
            assert raw is not None  # only a value waits for I/O
            # A schema id not seen yet: the registry lookup blocks, so not on the event loop.
            return await asyncio.to_thread(self.codec.decode, raw), None, None
        return decoded

    def decoded_now(
        self, raw: bytes | None, parsed: Any = UNPARSED
    ) -> tuple[Any, str | None, str | None] | None:
        """decode's result without waiting for anything; None if `raw` needs I/O first (a
        schema registry lookup), which only decode does."""
        if raw is None:
            if self.takes_none:
                return None, None, None
            raise DecodeError(tombstone_message(self.binding))
        if self.json_codec is not None:
            return self.from_json(raw, parsed)
        needs_io = getattr(self.codec, "needs_io", None)
        if needs_io is not None and needs_io(raw):
            return None
        return self.codec.decode(raw), None, None

    async def call_user(
        self,
        ctx: restate.ObjectContext,
        arg: Any,
        records: Sequence[KafkaEvent[Any]],
        redrive_of: LetterRef | None,
    ) -> tuple[bool, Any]:
        """Run the user's function on `arg`, which carries the events `records` (their
        coordinates are asked only for a failure: a batch builds them lazily):
        (True, its result); (False, None) when the records were dead-lettered or dropped
        instead. A failure to retry is raised, for Restate to retry the invocation."""
        invocation = ctx.request().id
        started = time.perf_counter()
        try:
            with tracing.child_span("handler") if tracing.enabled() else nullcontext():
                result = await self.fn(ctx, arg)
        except DisconnectedException:
            raise  # the attempt ended, not the handler: nothing to count or dead-letter
        except RejectedRecords as partial:
            # The rest was applied (and its state written): the caller settles the rejected.
            self.ran(ctx, len(records), started, failed=False)
            self.failures.settled(invocation)
            return True, partial
        except self.droppable as drop:
            self.ran(ctx, len(records), started, failed=False)
            self.failures.settled(invocation)
            cause = getattr(drop, "cause", type(drop).__name__)
            for event in records:
                coords = event.coordinates
                log.info("dropped record at %s: %s: %s", coords.describe(), cause, drop)
                self.report(ctx, "dropped", coords, cause, str(drop))
            return False, None
        except Exception as exc:
            self.ran(ctx, len(records), started, failed=True)
            verdict = self.failures.classify(exc, invocation)
            if verdict.action == "pass-on":
                raise  # a suspension or SDK signal wrapped by user code: the SDK handles it
            if verdict.action == "retry":
                watched = observed()
                if watched:  # the attempt, once; then each record's outcome
                    b = self.binding
                    report(Retrying(b.name, b.topic, verdict.error_type, invocation))
                if watched or tracing.enabled():
                    for event in records:
                        self.report(
                            ctx, "retrying", event.coordinates, verdict.error_type, verdict.message
                        )
                raise  # Restate retries with the binding's backoff (the journal replays)
            for event in records:
                await self.sink.dead_letter(
                    ctx, event.coordinates, event.raw, verdict.error_type, verdict.message,
                    verdict.attempts, redrive_of,
                )  # fmt: skip
            self.failures.settled(invocation)  # after the dead letters are journaled
            return False, None
        self.ran(ctx, len(records), started, failed=False)
        self.failures.settled(invocation)
        return True, result

    def ran(self, ctx: restate.ObjectContext, records: int, started: float, failed: bool) -> None:
        if observed():
            seconds = time.perf_counter() - started
            invocation = ctx.request().id
            report(HandlerRun(self.binding.name, records, seconds, failed, invocation))

    def report(
        self,
        ctx: restate.ObjectContext,
        decision: Decision,
        coords: KafkaCoordinates,
        cause: str | None = None,
        message: str | None = None,
        each_applied: bool = False,
    ) -> None:
        """`each_applied`: an applied record of a batch, for the observers that want each."""
        if observed():
            invocation = ctx.request().id
            outcome = Outcome(self.binding.name, decision, coords, cause, message, invocation)
            report(outcome, each_applied=each_applied)
        if tracing.enabled():
            tracing.set_outcome(trace.get_current_span(), decision, cause)

"""The durable publisher: produce to Kafka from a handler, exactly once per journal.

The produce runs inside `ctx.run`: Restate journals the broker's acknowledgement
(partition, offset), so a replay of the handler returns the journaled result instead of
producing again. A crash after the broker acked but before the journal entry completed is
the one window left: the record is then produced twice, with the same event id (drawn
from Restate's deterministic `ctx.uuid()` before the run), so a consumer binding with
`dedupe: true` processes it once. The id travels in a CloudEvents envelope because Restate
does not forward Kafka record headers to handlers.

`publish_many` does the same for a whole list in one `ctx.run`: one journal entry and one
concurrent round of broker acks for the batch instead of one of each per record.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import restate
from restate import RunOptions

from connectors.producer import (
    Delivery,
    Headers,
    KafkaProducer,
    ProduceError,
    ProducerRecord,
    create_producer,
)
from restate_stream.runtime.event import check_key
from restate_stream.runtime.formats import Codec, EncodeError, JsonCodec, cloudevent_json, json_text
from restate_stream.runtime.outcomes import PublishDone, observed, report
from restate_stream.telemetry import tracing

# Test builds set this to a fault point's name to die there with SIGKILL (crash-safety tests).
FAULT_ENV = "RESTATE_STREAM_FAULT"
AFTER_ACK = "after-publish-ack"


@dataclass(frozen=True)
class Published:
    event_id: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Outgoing:
    """One record for `Publisher.publish_many`; `event_type` overrides the call's default."""

    topic: str
    key: str | None
    value: Any
    event_type: str | None = None


def _some_failed(failed: list[tuple[int, ProduceError]], total: int) -> ProduceError:
    """Some records of a `publish_many` were not acknowledged."""
    first, error = failed[0]
    return ProduceError.of_many(
        failed,
        total,
        f"publish_many: {len(failed)} of {total} records failed (first: record {first}, "
        f"{error}); the other {total - len(failed)} were acknowledged and stay on their "
        "topics, a retry publishes them again with the same event ids",
    )


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


_open: weakref.WeakSet[Publisher] = weakref.WeakSet()


async def close_publishers() -> None:
    """Flush and close every publisher's producer on this event loop (worker shutdown).

    All are closed even if one fails; the first failure is raised afterwards.
    """
    results = await asyncio.gather(*(p.close() for p in list(_open)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


# The CloudEvents Kafka protocol binding's structured mode: consumers that detect CloudEvents
# by this header (Knative's, Dapr's) recognise our envelopes.
CLOUDEVENTS_HEADERS: Headers = (("content-type", b"application/cloudevents+json"),)


def _published(topic: str, records: int, started: float, error: str | None) -> None:
    if observed():
        report(PublishDone(topic, records, time.perf_counter() - started, error))


# The in-memory test kit's recorder while it delivers a record: handlers keep their own
# module-level publishers, and those must not reach for a broker inside a unit test.
_stand_in: ContextVar[Publisher | None] = ContextVar("restate_stream_publisher", default=None)


@contextmanager
def publishing_to(recorder: Publisher) -> Iterator[None]:
    """Within this block (this task and tasks it starts) every Publisher hands its publishes
    to `recorder` instead of producing (restate_stream.testing's BindingsKit uses it)."""
    token = _stand_in.set(recorder)
    try:
        yield
    finally:
        _stand_in.reset(token)


class Publisher:
    """One Kafka producer per worker process (per event loop), created on first publish."""

    def __init__(
        self,
        properties: Mapping[str, str],
        *,
        client: Literal["confluent", "aiokafka"] = "confluent",
        source: str = "restate-stream",
        max_attempts: int = 10,
    ) -> None:
        self.properties = dict(properties)
        self.client: Literal["confluent", "aiokafka"] = client
        self.source = source
        self.max_attempts = max_attempts
        self._producers: dict[int, KafkaProducer] = {}
        _open.add(self)

    def _producer(self) -> KafkaProducer:
        loop = id(asyncio.get_running_loop())
        if loop not in self._producers:
            self._producers[loop] = create_producer(self.properties, self.client)
        return self._producers[loop]

    async def close(self) -> None:
        """Close this loop's producer (a producer is bound to the loop it was made on)."""
        producer = self._producers.pop(id(asyncio.get_running_loop()), None)
        if producer is not None:
            await producer.close()

    async def publish(
        self,
        ctx: restate.Context,
        topic: str,
        key: str | None,
        value: Any,
        *,
        event_type: str | None = None,
        codec: Codec | None = None,
        envelope: bool = True,
        retry_forever: bool = False,
        event_id: str | None = None,
    ) -> Published:
        """Produce `value` and wait for the broker's ack, exactly once per journal.

        `event_id`: the CloudEvents id to send, when the caller derives one from what the
        event is (a window's emission); by default one drawn from `ctx.uuid()`.

        A value that cannot be encoded, a key that is not UTF-8 text, and a permanent broker
        refusal (too large, not authorised) raise TerminalError; transient errors are retried.
        With `retry_forever` (dead letters, which must not be given up on) every broker error
        is retried, so the publish succeeds once an operator fixes the cause.
        """
        if (recorder := _stand_in.get()) is not None and recorder is not self:
            return await recorder.publish(
                ctx,
                topic,
                key,
                value,
                event_type=event_type,
                codec=codec,
                envelope=envelope,
                retry_forever=retry_forever,
                event_id=event_id,
            )
        try:
            key_bytes, data = _encoded(topic, key, value, envelope, codec)
        except _Invalid as exc:
            raise restate.TerminalError(str(exc)) from None
        # Drawn outside ctx.run from Restate's deterministic random: the same on every replay.
        if event_id is None:
            event_id = str(ctx.uuid())
        kind = event_type or f"{topic}.published"
        producer = self._producer()

        async def produce() -> dict[str, int]:
            with tracing.publish_span(topic, 1) if tracing.enabled() else nullcontext():
                return await send()

        async def send() -> dict[str, int]:
            headers: Headers | None = None
            if isinstance(data, str):
                now = datetime.now(UTC).isoformat()  # inside the run: journaled, not replayed
                traceparent = tracing.current_traceparent()  # the send span's, if tracing
                payload = cloudevent_json(event_id, kind, self.source, now, data, traceparent)
                headers = CLOUDEVENTS_HEADERS
            else:
                payload = data
            started = time.perf_counter()
            try:
                delivery = await producer.send(topic, payload, key_bytes, headers)
            except ProduceError as exc:
                _published(topic, 1, started, type(exc).__name__)
                # A TerminalError inside the run is journaled: every replay would fail the
                # same way even after the cause is fixed. Dead letters keep retrying instead.
                if not exc.retriable and not retry_forever:
                    raise restate.TerminalError(str(exc)) from None
                raise
            _published(topic, 1, started, None)
            _fault(AFTER_ACK)
            return {"partition": delivery.partition, "offset": delivery.offset}

        attempts = None if retry_forever else self.max_attempts
        acked = await ctx.run_typed(f"publish {topic}", produce, RunOptions(max_attempts=attempts))
        return Published(event_id, topic, acked["partition"], acked["offset"])

    async def publish_many(
        self,
        ctx: restate.Context,
        records: Iterable[Outgoing],
        *,
        event_type: str | None = None,
        codec: Codec | None = None,
        envelope: bool = True,
        retry_forever: bool = False,
    ) -> list[Published]:
        """Produce every record in ONE durable step: one `ctx.run`, all acks journaled together.

        All records go to the producer at once, in list order (records of a key keep their
        order), and the run waits for every broker ack; its journaled result is the list of
        (topic, partition, offset, event id), one per record, in input order, returned as
        `Published`. Payloads are not journaled, only the acks. An empty list does nothing.

        Before the run every record is checked and encoded (key UTF-8 text, value encodable):
        a bad one raises TerminalError naming its index, and nothing is published.

        Event ids come from `ctx.uuid()` before the run, one per record, so they are the same
        on every attempt. The run is all or nothing in the journal, not on the topics:
        - a crash after the acks but before the journal entry publishes the whole batch again
          with the same ids (as `publish` does for one record);
        - if some records fail for retriable reasons the run fails (ProduceError) and is
          retried as a whole (up to `max_attempts`): records already acknowledged are sent
          again with the same ids.
        In both cases a consumer binding with `dedupe: true` applies each event once.
        If a record is refused for good (too large, not authorised), the call raises
        TerminalError naming its index; records acknowledged in that attempt stay on their
        topics (Kafka has no rollback without transactions). With `retry_forever` every
        failure is retried instead, as in `publish`.
        """
        if (recorder := _stand_in.get()) is not None and recorder is not self:
            return await recorder.publish_many(
                ctx,
                records,
                event_type=event_type,
                codec=codec,
                envelope=envelope,
                retry_forever=retry_forever,
            )
        batch = list(records)
        prepared: list[tuple[str, bytes | None, str | bytes, str]] = []
        for i, record in enumerate(batch):
            where = f"publish_many record {i} of {len(batch)}"
            if not isinstance(record, Outgoing):
                raise restate.TerminalError(
                    f"{where}: expected an Outgoing(topic, key, value), got {type(record).__name__}"
                )
            try:
                key_bytes, data = _encoded(record.topic, record.key, record.value, envelope, codec)
            except _Invalid as exc:
                raise restate.TerminalError(f"{where}: {exc}") from None
            kind = record.event_type or event_type or f"{record.topic}.published"
            prepared.append((record.topic, key_bytes, data, kind))
        if not prepared:
            return []
        # Drawn outside ctx.run, in list order: the same ids on every replay and retry.
        event_ids = [str(ctx.uuid()) for _ in prepared]
        producer = self._producer()

        async def produce_all() -> list[dict[str, Any]]:
            topics = {topic for topic, *_ in prepared}
            name = next(iter(topics)) if len(topics) == 1 else f"{len(topics)} topics"
            with tracing.publish_span(name, len(prepared)) if tracing.enabled() else nullcontext():
                return await send_all()

        async def send_all() -> list[dict[str, Any]]:
            now = datetime.now(UTC).isoformat()  # inside the run: journaled, not replayed
            traceparent = tracing.current_traceparent()  # the send span's, if tracing
            outgoing = [
                ProducerRecord(
                    topic,
                    cloudevent_json(event_id, kind, self.source, now, data, traceparent),
                    key_bytes,
                    CLOUDEVENTS_HEADERS,
                )
                if isinstance(data, str)
                else ProducerRecord(topic, data, key_bytes)
                for (topic, key_bytes, data, kind), event_id in zip(
                    prepared, event_ids, strict=True
                )
            ]
            started = time.perf_counter()
            outcomes = await producer.send_many(outgoing)
            failed = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, ProduceError)]
            if observed():
                by_topic: dict[tuple[str, str | None], int] = {}
                for record, outcome in zip(outgoing, outcomes, strict=True):
                    cause = type(outcome).__name__ if isinstance(outcome, ProduceError) else None
                    by_topic[(record.topic, cause)] = by_topic.get((record.topic, cause), 0) + 1
                for (topic, cause), count in by_topic.items():
                    _published(topic, count, started, cause)
            if failed:
                error = _some_failed(failed, len(outcomes))
                # Journaled if terminal: only for a refusal that no retry can fix.
                if not retry_forever and any(not f.retriable for _, f in failed):
                    raise restate.TerminalError(str(error)) from None
                raise error
            _fault(AFTER_ACK)
            return [
                {"topic": d.topic, "partition": d.partition, "offset": d.offset, "event_id": e}
                for d, e in zip(outcomes, event_ids, strict=True)
                if isinstance(d, Delivery)
            ]

        attempts = None if retry_forever else self.max_attempts
        name = f"publish_many {len(prepared)} records"
        acked = await ctx.run_typed(name, produce_all, RunOptions(max_attempts=attempts))
        return [Published(a["event_id"], a["topic"], a["partition"], a["offset"]) for a in acked]


class _Invalid(Exception):
    pass


def _encoded(
    topic: str, key: str | None, value: Any, envelope: bool, codec: Codec | None
) -> tuple[bytes | None, str | bytes]:
    """The key's bytes and the value, encoded once before the run (a bad one fails now, not
    after retries): JSON text for the envelope, or the codec's bytes."""
    try:
        key_bytes = check_key(key)
        data = json_text(value) if envelope else (codec or JsonCodec()).encode(value)
    except (EncodeError, TypeError, ValueError) as exc:  # InvalidKeyError is a ValueError
        raise _Invalid(f"publish to {topic!r}: {exc}") from None
    return key_bytes, data

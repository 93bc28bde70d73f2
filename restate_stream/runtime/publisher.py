"""The durable publisher: produce to Kafka from a handler, exactly once per journal.

The produce runs inside `ctx.run`: Restate journals the broker's acknowledgement
(partition, offset), so a replay of the handler returns the journaled result instead of
producing again. A crash after the broker acked but before the journal entry completed is
the one window left: the record is then produced twice, with the same event id (drawn
from Restate's deterministic `ctx.uuid()` before the run), so a consumer binding with
`dedupe: true` processes it once. The id travels in a CloudEvents envelope because Restate
does not forward Kafka record headers to handlers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import restate
from restate import RunOptions

from connectors.producer import KafkaProducer, ProduceFailed, create_producer
from restate_stream.runtime.event import check_key
from restate_stream.runtime.formats import Codec, EncodeError, JsonCodec, cloudevent_json, json_text

# Test builds set this to a fault point's name to die there with SIGKILL (crash-safety tests).
FAULT_ENV = "RESTATE_STREAM_FAULT"
AFTER_ACK = "after-publish-ack"


@dataclass(frozen=True)
class Published:
    event_id: str
    topic: str
    partition: int
    offset: int


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
    ) -> Published:
        """Produce `value` and wait for the broker's ack, exactly once per journal.

        A value that cannot be encoded, a key that is not UTF-8 text, and a permanent broker
        refusal (too large, not authorised) raise TerminalError; transient errors are retried.
        With `retry_forever` (dead letters, which must not be given up on) every broker error
        is retried, so the publish succeeds once an operator fixes the cause.
        """
        try:
            key_bytes = check_key(key)
            # Encoded once, before the run: a bad value fails now, not after retries.
            data = json_text(value) if envelope else (codec or JsonCodec()).encode(value)
        except (EncodeError, TypeError, ValueError) as exc:  # InvalidKeyError is a ValueError
            raise restate.TerminalError(f"publish to {topic!r}: {exc}") from None
        # Drawn outside ctx.run from Restate's deterministic random: the same on every replay.
        event_id = str(ctx.uuid())
        kind = event_type or f"{topic}.published"
        producer = self._producer()

        async def produce() -> dict[str, int]:
            if isinstance(data, str):
                now = datetime.now(UTC).isoformat()  # inside the run: journaled, not replayed
                payload = cloudevent_json(event_id, kind, self.source, now, data)
            else:
                payload = data
            try:
                delivery = await producer.send(topic, payload, key_bytes)
            except ProduceFailed as exc:
                # A TerminalError inside the run is journaled: every replay would fail the
                # same way even after the cause is fixed. Dead letters keep retrying instead.
                if not exc.retriable and not retry_forever:
                    raise restate.TerminalError(str(exc)) from None
                raise
            _fault(AFTER_ACK)
            return {"partition": delivery.partition, "offset": delivery.offset}

        attempts = None if retry_forever else self.max_attempts
        acked = await ctx.run_typed(f"publish {topic}", produce, RunOptions(max_attempts=attempts))
        return Published(event_id, topic, acked["partition"], acked["offset"])

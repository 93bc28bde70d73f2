"""Where a bound handler's failed records go: the binding's dead-letter topic.

A dead letter (runtime/dead_letter.py) keeps the original key and value bytes and says where
the record came from and why it failed; without a dead-letter topic the record is dropped and
logged. A call `dlq redrive` made (the `restate-stream.redrive-of` header) names the letter it
redrives: if it fails again its new letter names that one, and if it goes through a Resolution
is written, so the dead-letter topic tells which records are done. Letters and resolutions are
published durably (journaled), signed when a signing key is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import restate

from restate_stream.bindings import Binding
from restate_stream.runtime.dead_letter import (
    DEAD_LETTER_TYPE,
    REDRIVE_OF_HEADER,
    RESOLVED_TYPE,
    DeadLetter,
    LetterRef,
    Resolution,
)
from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.letter_signing import LetterKeys
from restate_stream.runtime.outcomes import Decision
from restate_stream.runtime.publisher import Published, Publisher

# One logger for every bound handler's decisions, per-record or batched.
log = logging.getLogger("restate_stream.runtime.bound")

# Reports a record's outcome: (ctx, decision, coordinates, cause, message).
Reporter = Callable[[restate.ObjectContext, Decision, KafkaCoordinates, str, str], None]


class DeadLetterSink:
    """The dead-letter topic of one binding, written through the binding's publisher."""

    def __init__(self, binding: Binding, publisher: Publisher, report: Reporter) -> None:
        self.binding = binding
        self.publisher = publisher
        self.report = report
        # Read at start: a key too short stops the worker rather than its first dead letter.
        self.letter_keys = LetterKeys.from_env()

    def redrive_of(self, headers: Mapping[str, str], body: bytes) -> LetterRef | None:
        """The letter a `dlq redrive` call names; with a signing key, only with the call's
        signature (else a TerminalError: nothing runs, nothing is written)."""
        header = headers.get(REDRIVE_OF_HEADER)
        redrive_of = LetterRef.from_header(header)
        if redrive_of is None:
            return None
        assert header is not None
        name = self.binding.name
        why = self.letter_keys.redrive_distrust(name, header, headers, body)
        if why is not None:
            log.error("binding %s: refused the redrive of %s: %s", name, header, why)
            raise restate.TerminalError(
                f"binding {name}: refused the redrive of {redrive_of.describe()}: {why}"
            )
        return redrive_of

    async def dead_letter(
        self,
        ctx: restate.ObjectContext,
        coords: KafkaCoordinates,
        raw: bytes,
        error_type: str,
        message: str,
        attempts: int,
        redrive_of: LetterRef | None,
    ) -> None:
        """Write the record's dead letter (or drop it, without a topic), and report which."""
        b = self.binding
        where = f"binding {b.name}, {coords.describe()}, invocation {ctx.request().id}"
        if b.dead_letter is None:
            log.error(
                "dropped record (%s): %s: %s; no dead_letter topic set", where, error_type, message
            )
            self.report(ctx, "dropped", coords, error_type, message)
            return
        letter = DeadLetter.of(b.name, coords, raw, error_type, message, attempts, redrive_of)
        published = await self._publish(
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
        self.report(ctx, "dead-lettered", coords, error_type, message)

    async def resolved(
        self, ctx: restate.ObjectContext, coords: KafkaCoordinates, redrive_of: LetterRef | None
    ) -> None:
        """A redriven letter went through: say so on the dead-letter topic (`dlq` reads it)."""
        topic = self.binding.dead_letter
        if redrive_of is None or topic is None:
            return
        resolution = Resolution.of(self.binding.name, coords, redrive_of)
        await self._publish(
            ctx,
            coords,
            resolution.to_json(),
            RESOLVED_TYPE,
            f"recording the redrive of {redrive_of.describe()} on {topic!r}",
        )
        log.info("redrive of %s resolved %s", redrive_of.describe(), coords.describe())

    async def _publish(
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

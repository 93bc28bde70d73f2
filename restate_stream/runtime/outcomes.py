"""What happens to records in a worker, as events for observers (the in-memory test kit,
metrics, tracing): per record, what a bound handler decided (`Outcome`: applied,
dead-lettered with its cause, deduplicated, a redelivery dropped, left to Restate to retry);
per handler call, how long it ran on how many records (`HandlerRun`); per durable publish,
its ack or error (`PublishDone`).

Observers subscribe with `observe`. Reporting costs one truth test while nobody observes.
An invocation that Restate replays reports its decisions again; a publish is reported once
(it runs inside `ctx.run`, which a replay does not run again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from restate_stream.runtime.event import KafkaCoordinates

log = logging.getLogger("restate_stream.outcomes")

Decision = Literal[
    "applied",  # the handler ran and returned
    "dead-lettered",  # written to the binding's dead-letter topic, with its cause
    "dropped",  # would have been dead-lettered, but the binding has no dead_letter topic
    "deduplicated",  # its event id was applied before (dedupe: true)
    "redelivered",  # a batched record at or below its object's high-water: applied before
    "retrying",  # the handler raised; Restate retries the invocation
]


@dataclass(frozen=True)
class Outcome:
    binding: str
    decision: Decision
    coordinates: KafkaCoordinates
    # For dead letters: DecodeError, Tombstone, TerminalError or RetriesExhausted; for
    # retrying: the exception's class name.
    cause: str | None = None
    message: str | None = None
    invocation_id: str | None = None


@dataclass(frozen=True)
class HandlerRun:
    """One call of a bound handler's user function (a batch: on `records` events)."""

    binding: str
    records: int
    seconds: float
    failed: bool
    invocation_id: str | None = None


@dataclass(frozen=True)
class PublishDone:
    """One durable publish's produce call (`records` > 1 for publish_many)."""

    topic: str
    records: int
    seconds: float
    error: str | None = None  # the exception's class name when the broker did not ack


Event = Outcome | HandlerRun | PublishDone
Observer = Callable[[Event], None]
_observers: list[Observer] = []


def observe(observer: Observer) -> Callable[[], None]:
    """Call `observer` with every outcome from now on; returns the function that stops it."""
    _observers.append(observer)

    def stop() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return stop


def observed() -> bool:
    return bool(_observers)


def report(event: Event) -> None:
    """Hand `event` to every observer; an observer's failure is logged, never raised into
    the handler (an observer must not change what happens to a record)."""
    for observer in list(_observers):
        try:
            observer(event)
        except Exception:
            log.exception("outcome observer %r failed", observer)

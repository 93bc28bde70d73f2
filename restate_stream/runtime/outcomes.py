"""What happens to records in a worker, as events for observers (the in-memory test kit,
metrics, tracing): per record, what a bound handler decided (`Outcome`: applied,
dead-lettered with its cause, deduplicated, a redelivery dropped, left to Restate to retry);
per handler call, how long it ran on how many records (`HandlerRun`) and, if it raised an
error Restate retries, one `Retrying` (an attempt: a batch's records each say `retrying` too);
per durable publish, its ack or error (`PublishDone`).

Observers subscribe with `observe`. Reporting costs one truth test while nobody observes.
A batched handler's applied records are many: an observer that only counts them (metrics)
subscribes with `each_applied=False` and gets one `AppliedRecords` per call instead of an
`Outcome` per record (each cost its coordinates, an object, a call and a counter's
increment: a batched record's whole invocation took 14 µs with them, 2.5 without,
benchmarks/batch_decode_cost.py --metrics).
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
class Retrying:
    """A call of a bound handler raised an error Restate retries: one per attempt, however
    many records it held."""

    binding: str
    topic: str
    cause: str  # the exception's class name
    invocation_id: str | None = None


@dataclass(frozen=True)
class AppliedRecords:
    """A batched handler's call applied `records` records of `topic`: what an observer that
    subscribed with `each_applied=False` gets instead of their `Outcome`s."""

    binding: str
    topic: str
    records: int
    invocation_id: str | None = None


@dataclass(frozen=True)
class PublishDone:
    """One durable publish's produce call (`records` > 1 for publish_many)."""

    topic: str
    records: int
    seconds: float
    error: str | None = None  # the exception's class name when the broker did not ack


Event = Outcome | AppliedRecords | HandlerRun | Retrying | PublishDone
Observer = Callable[[Event], None]
# Each observer, with whether it wants each applied record of a batch (else their count).
_observers: list[tuple[Observer, bool]] = []


def observe(observer: Observer, *, each_applied: bool = True) -> Callable[[], None]:
    """Call `observer` with every outcome from now on; returns the function that stops it.
    `each_applied=False`: a batch's applied records come as one `AppliedRecords`."""
    entry = (observer, each_applied)
    _observers.append(entry)

    def stop() -> None:
        if entry in _observers:
            _observers.remove(entry)

    return stop


def observed() -> bool:
    return bool(_observers)


def each_applied_observed() -> bool:
    """Whether an observer wants each applied record of a batch as its own `Outcome`."""
    return any(each for _, each in _observers)


def counts_observed() -> bool:
    """Whether an observer counts a batch's applied records (`AppliedRecords`)."""
    return any(not each for _, each in _observers)


def report(event: Event, *, each_applied: bool = False) -> None:
    """Hand `event` to every observer (`AppliedRecords` to those that count applied records;
    with `each_applied`, an applied record of a batch, to those that want each); an
    observer's failure is logged, never raised into the handler (an observer must not change
    what happens to a record)."""
    counted = isinstance(event, AppliedRecords)
    for observer, each in list(_observers):
        if (counted and each) or (each_applied and not each):
            continue
        try:
            observer(event)
        except Exception:
            log.exception("outcome observer %r failed", observer)

"""What a bound handler decided for each record: applied, dead-lettered (with its cause),
deduplicated, a redelivery dropped, or left to Restate to retry (`Decision`).

Bound handlers (unbatched and batched) report every decision here; observers (the in-memory
test kit, metrics) subscribe with `observe`. Reporting costs one truth test per record while
nobody observes. An invocation that Restate replays reports its decisions again.
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


Observer = Callable[[Outcome], None]
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


def report(outcome: Outcome) -> None:
    """Hand `outcome` to every observer; an observer's failure is logged, never raised into
    the handler (an observer must not change what happens to a record)."""
    for observer in list(_observers):
        try:
            observer(outcome)
        except Exception:
            log.exception("outcome observer %r failed", observer)

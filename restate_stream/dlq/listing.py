"""A binding's dead letters read back from its dead-letter topic, one entry per source record.

See the package docstring for the rule that makes a source record resolved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.consume import ConsumedRecord, TopicNotFoundError, read_topic
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.errors import RestateStreamError
from restate_stream.runtime.dead_letter import (
    DeadLetter,
    LetterRef,
    NotADeadLetterError,
    Resolution,
    SourceRecord,
    parse_record,
)
from restate_stream.runtime.formats import unwrap_cloudevent


class DlqError(RestateStreamError, RuntimeError):
    """A problem with a complete message for people (printed without a traceback)."""


# --- the records of a dead-letter topic --------------------------------------------------------


@dataclass(frozen=True)
class StoredLetter:
    at: LetterRef  # where on the dead-letter topic
    letter: DeadLetter
    event_id: str | None = None  # its CloudEvents id: the same on a crash-duplicated copy

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"

    def to_json(self) -> dict[str, Any]:
        return {"dlq": self.at.model_dump(), **self.letter.to_json()}


@dataclass(frozen=True)
class StoredResolution:
    at: LetterRef
    resolution: Resolution


@dataclass(frozen=True)
class Unreadable:
    at: LetterRef
    problem: str

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"


Entry = StoredLetter | StoredResolution | Unreadable


def parse_entry(record: ConsumedRecord) -> Entry:
    at = LetterRef(topic=record.topic, partition=record.partition, offset=record.offset)
    try:
        parsed = parse_record(record.value or b"")
    except NotADeadLetterError as exc:
        return Unreadable(at, f"not a restate-stream dead-letter record: {exc}")
    if isinstance(parsed, Resolution):
        return StoredResolution(at, parsed)
    _, event_id, _ = unwrap_cloudevent(json.loads(record.value or b""))  # parsed above
    return StoredLetter(at, parsed, event_id)


# --- one entry per source record ---------------------------------------------------------------


@dataclass
class SourceHistory:
    """A source record's dead letters, oldest first, and the Resolution of the latest one."""

    binding: str
    letters: list[StoredLetter]
    resolution: StoredResolution | None = None

    @property
    def latest(self) -> StoredLetter:
        return self.letters[-1]

    @property
    def source(self) -> SourceRecord:
        return self.letters[0].letter.source

    @property
    def key(self) -> str | None:
        return self.latest.letter.key

    @property
    def resolved(self) -> bool:
        return self.resolution is not None

    @property
    def attempts(self) -> int:
        return sum(s.letter.attempts for s in self.letters)

    def to_json(self) -> dict[str, Any]:
        latest = self.latest.letter
        return {
            "binding": self.binding,
            "source": self.source.model_dump(mode="json"),
            "key": self.key,
            "resolved": self.resolved,
            "letter_count": len(self.letters),
            "attempts": self.attempts,
            "latest": {
                "dlq": self.latest.at.model_dump(),
                "error": latest.error.model_dump(),
                "failed_at": latest.failed_at.isoformat(),
            },
            "history": [s.to_json() for s in self.letters],
        }


@dataclass
class Listing:
    binding: str
    topic: str
    records: list[SourceHistory]
    unreadable: list[Unreadable] = field(default_factory=list)
    others: int = 0  # records of other bindings sharing the topic

    @property
    def unresolved(self) -> list[SourceHistory]:
        return [r for r in self.records if not r.resolved]

    @property
    def letter_count(self) -> int:
        return sum(len(r.letters) for r in self.records)


def by_source_record(entries: Iterable[Entry], binding: str, topic: str = "") -> Listing:
    """The binding's dead letters per source record (in order of their first letter)."""
    histories: dict[tuple[str, int, int], SourceHistory] = {}
    resolutions: dict[LetterRef, StoredResolution] = {}
    unreadable: list[Unreadable] = []
    others = 0
    for entry in entries:
        if isinstance(entry, Unreadable):
            unreadable.append(entry)
        elif isinstance(entry, StoredResolution):
            if entry.resolution.binding == binding:
                resolutions[entry.resolution.redrive_of] = entry
            else:
                others += 1
        elif entry.letter.binding != binding:
            others += 1
        else:
            coordinates = entry.letter.source.coordinates
            histories.setdefault(coordinates, SourceHistory(binding, [])).letters.append(entry)
    for history in histories.values():
        history.letters = _distinct(history.letters)
        history.letters.sort(key=lambda s: (s.letter.failed_at, s.at.partition, s.at.offset))
        history.resolution = resolutions.get(history.latest.at)
    records = sorted(histories.values(), key=lambda h: h.letters[0].letter.failed_at)
    return Listing(binding, topic, records, unreadable, others)


def _distinct(letters: list[StoredLetter]) -> list[StoredLetter]:
    """One copy of each letter. A worker that dies between the broker's ack of a dead letter
    and Restate's journal entry publishes it again on replay: the same event id, redrive_of
    and error, only failed_at differs. That is one failure, not two. The later copy is kept
    (topic order): it is the one earlier versions showed as latest, so a Resolution written
    for it still matches."""

    def same(s: StoredLetter) -> tuple[Any, ...] | None:
        if s.event_id is None:
            return None
        return (s.event_id, s.letter.redrive_of, s.letter.error)

    last = {same(s): s for s in letters if s.event_id is not None}
    return [s for s in letters if s.event_id is None or last[same(s)] is s]


# --- reading -----------------------------------------------------------------------------------


def find_binding(spec: BindingsFile, name: str) -> Binding:
    for binding in spec.bindings:
        if binding.name == name:
            if binding.dead_letter is None:
                raise DlqError(f"{spec.path}: binding {name} sets no dead_letter topic")
            return binding
    names = ", ".join(b.name for b in spec.bindings) or "none"
    raise DlqError(f"{spec.path}: no binding named {name!r} (bindings: {names})")


def read_entries(
    spec: BindingsFile,
    binding: Binding,
    *,
    start: Mapping[int, int] | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[Entry]:
    assert binding.dead_letter is not None  # find_binding checked
    properties = spec.clusters[binding.cluster].properties
    try:
        records = read_topic(
            properties, binding.dead_letter, start=start, limit=limit, timeout=timeout
        )
    except TopicNotFoundError as exc:
        raise DlqError(
            f"the dead-letter topic {binding.dead_letter!r} of binding {binding.name} does not "
            f"exist on Kafka cluster {binding.cluster} (apply creates it)"
        ) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise DlqError(f"Kafka cluster {binding.cluster}: {exc}") from exc
    return [parse_entry(r) for r in records]


def load_listing(spec: BindingsFile, binding: Binding, *, limit: int | None = None) -> Listing:
    assert binding.dead_letter is not None
    return by_source_record(
        read_entries(spec, binding, limit=limit), binding.name, binding.dead_letter
    )

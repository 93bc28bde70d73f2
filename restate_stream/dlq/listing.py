"""A binding's dead letters read back from its dead-letter topic, one entry per source record.

See the package docstring for the rule that makes a source record resolved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.consume import ConsumedRecord, TopicNotFoundError, read_topic
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.dlq.trust import key_disagreement, source_disagreement
from restate_stream.errors import DeadLetterError
from restate_stream.runtime.dead_letter import (
    DeadLetter,
    LetterRef,
    NotADeadLetterError,
    Resolution,
    SourceRecord,
    record_model,
    unwrap_record,
)
from restate_stream.runtime.letter_signing import LetterKeys


class DlqError(DeadLetterError, RuntimeError):
    """A problem with a complete message for people (printed without a traceback)."""


# --- the records of a dead-letter topic --------------------------------------------------------


@dataclass(frozen=True)
class StoredLetter:
    at: LetterRef  # where on the dead-letter topic
    letter: DeadLetter
    event_id: str | None = None  # its CloudEvents id: the same on a crash-duplicated copy
    distrust: str | None = None  # why it is refused (dlq/trust.py); None: it is not

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"

    def to_json(self) -> dict[str, Any]:
        return {"dlq": self.at.model_dump(), **self.letter.to_json()}


@dataclass(frozen=True)
class StoredResolution:
    at: LetterRef
    resolution: Resolution
    distrust: str | None = None

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"


@dataclass(frozen=True)
class Unreadable:
    at: LetterRef
    problem: str

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"


Entry = StoredLetter | StoredResolution | Unreadable


def parse_entry(record: ConsumedRecord, keys: LetterKeys | None = None) -> Entry:
    """The record, with why it is not to be trusted (signature, key fields: dlq/trust.py);
    `keys` default to the environment's."""
    at = LetterRef(topic=record.topic, partition=record.partition, offset=record.offset)
    try:
        data, event_id, kind = unwrap_record(record.value or b"")
        parsed = record_model(data, kind)
    except NotADeadLetterError as exc:
        return Unreadable(at, f"not a restate-stream dead-letter record: {exc}")
    keys = LetterKeys.from_env() if keys is None else keys
    distrust = keys.distrust(data, kind) or key_disagreement(parsed, record.key)
    if isinstance(parsed, Resolution):
        return StoredResolution(at, parsed, distrust)
    return StoredLetter(at, parsed, event_id, distrust)


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
    # The binding's records `dlq` does not act on, each with its `distrust` (dlq/trust.py).
    refused: list[StoredLetter | StoredResolution] = field(default_factory=list)

    @property
    def unresolved(self) -> list[SourceHistory]:
        return [r for r in self.records if not r.resolved]

    @property
    def letter_count(self) -> int:
        return sum(len(r.letters) for r in self.records)


def by_source_record(
    entries: Iterable[Entry], binding: str, topic: str = "", source_topic: str | None = None
) -> Listing:
    """The binding's dead letters per source record (in order of their first letter). Those
    refused (their `distrust`, or a source topic other than `source_topic`) take no part."""
    histories: dict[tuple[str, int, int], SourceHistory] = {}
    resolutions: dict[LetterRef, list[StoredResolution]] = {}
    unreadable: list[Unreadable] = []
    refused: list[StoredLetter | StoredResolution] = []
    others = 0
    for entry in entries:
        if isinstance(entry, Unreadable):
            unreadable.append(entry)
            continue
        record = entry.resolution if isinstance(entry, StoredResolution) else entry.letter
        if record.binding != binding:
            others += 1
        elif why := entry.distrust or source_disagreement(record, source_topic):
            refused.append(dataclasses.replace(entry, distrust=why))
        elif isinstance(entry, StoredResolution):
            resolutions.setdefault(entry.resolution.redrive_of, []).append(entry)
        else:
            coordinates = entry.letter.source.coordinates
            histories.setdefault(coordinates, SourceHistory(binding, [])).letters.append(entry)
    for history in histories.values():
        every = history.letters
        history.letters = _distinct(every)
        history.letters.sort(key=lambda s: (s.letter.failed_at, s.at.partition, s.at.offset))
        history.resolution = _resolution(history, every, resolutions, refused)
    records = sorted(histories.values(), key=lambda h: h.letters[0].letter.failed_at)
    return Listing(binding, topic, records, unreadable, others, refused)


def _resolution(
    history: SourceHistory,
    every: list[StoredLetter],
    resolutions: Mapping[LetterRef, list[StoredResolution]],
    refused: list[StoredLetter | StoredResolution],
) -> StoredResolution | None:
    """The first Resolution of the history's latest letter, or of an exact copy of it, that
    is about the same record; one naming it but another record (key or coordinates) is
    refused. A copy (every field the same, failed_at included) is the same failure written
    again, by whoever can write the topic: resolved once, it is not redriven again."""
    latest = history.latest
    copies = [s.at for s in every if s.letter == latest.letter]
    found = None
    for candidate in (c for at in copies for c in resolutions.get(at, [])):
        resolution = candidate.resolution
        same = (resolution.source.coordinates, resolution.key) == (
            latest.letter.source.coordinates,
            latest.letter.key,
        )
        if same and found is None:
            found = candidate
        elif not same:
            named = resolution.redrive_of.describe()
            why = f"it resolves {named}, a letter of another source record or key"
            refused.append(dataclasses.replace(candidate, distrust=why))
    return found


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
    binding = spec.binding_named(name, DlqError)
    if binding.dead_letter is None:
        raise DlqError(f"{spec.path}: binding {name} sets no dead_letter topic")
    return binding


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
    keys = LetterKeys.from_env()
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
    return [parse_entry(r, keys) for r in records]


def load_listing(spec: BindingsFile, binding: Binding, *, limit: int | None = None) -> Listing:
    assert binding.dead_letter is not None
    entries = read_entries(spec, binding, limit=limit)
    return by_source_record(entries, binding.name, binding.dead_letter, binding.topic)

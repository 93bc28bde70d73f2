"""A dead letter published twice by a crash (same event id, replayed after the broker's ack
but before Restate journaled it) is one letter in its source record's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.consume import ConsumedRecord
from restate_stream.dlq import Entry, StoredLetter, by_source_record, parse_entry
from restate_stream.runtime.dead_letter import (
    DEAD_LETTER_TYPE,
    RESOLVED_TYPE,
    DeadLetter,
    LetterRef,
    Resolution,
)
from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.formats import cloudevent

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SOURCE = KafkaCoordinates("orders", 0, 5, WHEN, b"acct-1", "sub_1")


def letter_at(
    offset: int, event_id: str, *, seconds: int, redrive_of: int | None = None
) -> StoredLetter:
    ref = None if redrive_of is None else LetterRef(topic="dlq", partition=0, offset=redrive_of)
    letter = DeadLetter.of("orders", SOURCE, b"{}", "TerminalError", "bad", 1, ref)
    letter = letter.model_copy(update={"failed_at": WHEN + timedelta(seconds=seconds)})
    value = cloudevent(event_id, DEAD_LETTER_TYPE, "restate-stream", "t", letter.to_json())
    entry = parse_entry(ConsumedRecord("dlq", 0, offset, b"acct-1", value, None))
    assert isinstance(entry, StoredLetter)
    return entry


def resolution_of(offset: int, letter_offset: int) -> Entry:
    ref = LetterRef(topic="dlq", partition=0, offset=letter_offset)
    value = cloudevent(
        f"res-{offset}", RESOLVED_TYPE, "restate-stream", "t", Resolution.of("orders", SOURCE, ref)
    )
    return parse_entry(ConsumedRecord("dlq", 0, offset, b"acct-1", value, None))


def test_a_crash_duplicated_letter_counts_once_and_the_later_copy_is_latest() -> None:
    entries: list[Entry] = [letter_at(0, "ev-1", seconds=0), letter_at(1, "ev-1", seconds=3)]
    [history] = by_source_record(entries, "orders", "dlq").records
    assert [s.at.offset for s in history.letters] == [1]
    assert history.attempts == 1 and not history.resolved
    assert history.to_json()["letter_count"] == 1

    # A redrive of the kept copy resolves the source record.
    resolved = by_source_record([*entries, resolution_of(2, 1)], "orders", "dlq")
    assert resolved.records[0].resolved and resolved.letter_count == 1


def test_letters_with_different_ids_or_redrive_of_stay_separate() -> None:
    entries: list[Entry] = [
        letter_at(0, "ev-1", seconds=0),
        letter_at(1, "ev-2", seconds=1),  # the record consumed again: another invocation
        letter_at(2, "ev-2", seconds=2, redrive_of=1),  # a failed redrive, same id reused
    ]
    [history] = by_source_record(entries, "orders", "dlq").records
    assert [s.at.offset for s in history.letters] == [0, 1, 2]
    assert history.attempts == 3

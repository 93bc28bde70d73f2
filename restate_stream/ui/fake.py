"""A made-up data source: the dashboard's pages without engines (unit tests, the render
benchmark). It records the actions asked of it instead of doing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors import PartitionLag
from connectors.consume import ConsumedRecord
from restate_stream.bindings import BindingsFile
from restate_stream.bindings.loader import parse_bindings
from restate_stream.control.apply import ApplyReport
from restate_stream.control.status import BindingStatus
from restate_stream.dlq import (
    Listing,
    RedriveResult,
    SourceHistory,
    StoredLetter,
    StoredResolution,
    by_source_record,
)
from restate_stream.dlq.listing import Entry
from restate_stream.runtime.dead_letter import (
    DeadLetter,
    ErrorInfo,
    LetterRef,
    Resolution,
    SourceRecord,
)
from restate_stream.testing.files import bindings_yaml
from restate_stream.ui.contents import Contents
from restate_stream.ui.sources import Coordinates, PauseOutcome

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def fake_spec(names: list[str], path: Path = Path("bindings.yaml")) -> BindingsFile:
    """A bindings file with one binding per name: topic `<name>`, dead letters on `<name>.dlq`."""
    text = bindings_yaml(
        admin_url="http://127.0.0.1:9070",
        ingress_url="http://127.0.0.1:8080",
        clusters={"local": "127.0.0.1:9092"},
        bindings=[
            {"name": n, "topic": n, "handler": f"S{i}/consume", "dead_letter": f"{n}.dlq"}
            for i, n in enumerate(names)
        ],
    )
    return parse_bindings(text, path)


def fake_letters(binding: str, count: int, *, resolved_every: int = 0) -> list[Entry]:
    """`count` dead letters of distinct source records (every `resolved_every`-th resolved)."""
    entries: list[Entry] = []
    for i in range(count):
        at = LetterRef(topic=f"{binding}.dlq", partition=i % 3, offset=i // 3)
        letter = DeadLetter(
            binding=binding,
            source=SourceRecord(topic=binding, partition=i % 4, offset=1000 + i),
            key=f"key-{i % 50}",
            value=f'{{"id": {i}, "poison": true, "payload": "{"x" * 40}"}}',
            value_base64=None,
            error=ErrorInfo(type="TerminalError", message=f"record {i} is poison"),
            attempts=3,
            failed_at=EPOCH + timedelta(seconds=i),
        )
        entries.append(StoredLetter(at, letter, event_id=f"ev-{i}"))
        if resolved_every and i % resolved_every == 0:
            where = LetterRef(topic=at.topic, partition=0, offset=100_000 + i)
            resolution = Resolution(
                binding=binding,
                source=letter.source,
                key=letter.key,
                redrive_of=at,
                resolved_at=letter.failed_at + timedelta(minutes=5),
            )
            entries.append(StoredResolution(where, resolution))
    return entries


def fake_status(name: str, *, dead_letters: int = 0, stuck: int = 0) -> BindingStatus:
    status = BindingStatus(
        name, f"kafka://local/{name}", "service://S/consume", f"rs-{name}", "active", ["sub_1"]
    )
    status.lag = [PartitionLag(p, 100 * p, 100 * p + p * 7, p * 7) for p in range(4)]
    status.invocations = {"succeeded": 1200, "failed": dead_letters, "backing-off": stuck}
    status.stuck_keys = [
        {
            "key": f"key-{k}",
            "status": "backing-off",
            "retry_count": 4,
            "last_failure": "[500] ValueError: no such customer",
            "id": f"inv_{k:04d}abcdef",
        }
        for k in range(stuck)
    ]
    status.dead_letter_topic = f"{name}.dlq"
    status.dead_letters, status.dead_letters_resolved = dead_letters, 0
    return status


@dataclass
class FakeSource:
    spec_file: BindingsFile
    status_list: list[BindingStatus]
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    records: dict[str, list[ConsumedRecord]] = field(default_factory=dict)
    redrives: list[tuple[str, set[Coordinates] | None]] = field(default_factory=list)
    pauses: list[tuple[str, bool]] = field(default_factory=list)
    status_reads: int = 0
    held: dict[str, Contents] = field(default_factory=dict)  # table and window bindings

    def spec(self) -> BindingsFile:
        return self.spec_file

    async def statuses(self) -> list[BindingStatus]:
        self.status_reads += 1
        return self.status_list

    async def listing(self, binding: str) -> Listing:
        return by_source_record(self.entries.get(binding, []), binding, f"{binding}.dlq")

    async def redrive(self, binding: str, only: set[Coordinates] | None) -> list[RedriveResult]:
        self.redrives.append((binding, only))
        listing = await self.listing(binding)
        chosen: list[SourceHistory] = [
            h for h in listing.unresolved if only is None or h.source.coordinates in only
        ]
        return [RedriveResult(h, "resolved", sent=True) for h in chosen]

    async def set_paused(self, binding: str, paused: bool) -> PauseOutcome:
        self.pauses.append((binding, paused))
        return PauseOutcome(True, ApplyReport())

    async def tail(self, topic: str, last: int) -> list[ConsumedRecord]:
        return self.records.get(topic, [])[-last:]

    async def contents(self, binding: str, limit: int) -> Contents:
        held = self.held.get(binding, Contents(0, [], []))
        keys = sorted({r.key for r in held.table} | {w.key for w in held.windows})[:limit]
        return Contents(
            held.keys,
            [r for r in held.table if r.key in keys],
            [w for w in held.windows if w.key in keys],
        )

"""Partitions a Restate subscription cannot get past, and moving a binding past them.

Restate's Kafka consumer routes a record to a virtual object by its key, and only a UTF-8 key
can name an object: on any other key its consumer task fails at that offset, restarts, and
fails again, so the partition stops for good while the group's committed offset stays put.
That is visible from outside: the record at the group's committed offset (or, with no
commit, where `start:` puts a new group) has a key that is not UTF-8 text.

`unblock` moves the binding past such records without losing them: each goes to the
binding's dead-letter topic, the subscription is deleted, the pinned group's offset for the
partition is set just past the record once Restate's consumer has left the group, and the
subscription is created again, resuming from the group's offsets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors import PartitionLag, Record, TopicAdmin, produce_records
from connectors.consume import ConsumedRecord, read_partition
from restate_stream._util.poll import PollTimeout, apoll
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.plan import (
    TopicAdminFactory,
    binding_key,
    by_binding_key,
)
from restate_stream.errors import RestateServerError
from restate_stream.runtime.dead_letter import DEAD_LETTER_TYPE, DeadLetter
from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.formats.cloudevents import cloudevent_json
from restate_stream.runtime.formats.json import json_text
from restate_stream.runtime.letter_signing import LetterKeys

# (cluster properties, topic, partition, offset or None for the first record, how many)
# -> the records from there, in order
RecordReader = Callable[[Mapping[str, str], str, int, int | None, int], list[ConsumedRecord]]
# How far past the group's committed offset diagnosis looks for the record that blocks.
# Restate's consumer commits only every few seconds, so a partition that stops at a record
# usually has an older commit (or none) than the record it stopped at.
SCAN_LIMIT = 1000

# The dead-letter error type of a record moved aside by unblock.
UNROUTABLE_KEY = "UnroutableKey"
# How long unblock waits for Restate's consumer to leave the group after the delete.
GROUP_LEAVE_TIMEOUT = 30.0
# How long unblock watches for Restate's consumer failing (being recreated) on the record.
RESTART_WINDOW = 15.0


class UnblockError(RestateServerError, RuntimeError):
    """Unblock could not (or would not) proceed; the message says why and what to do."""


@dataclass(frozen=True)
class BlockedPartition:
    topic: str
    partition: int
    offset: int
    reason: str
    key_bytes_hex: str | None  # the raw key, for keys that cannot be shown as text

    def describe(self) -> str:
        return f"p{self.partition}@{self.offset}: {self.reason}"


def blocking_reason(binding: Binding, key: bytes | None) -> str | None:
    """Why Restate's subscription cannot deliver a record with `key` to the binding, or None.

    A keyless record goes to the object with the empty key "" (not blocked); an unkeyed
    handler (a plain service) does not route by key at all.
    """
    if not binding.keyed or key is None:
        return None
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return f"key is not UTF-8 text ({key.hex(' ')})"
    return None


def read_positions(binding: Binding, lag: Iterable[PartitionLag]) -> list[tuple[int, int | None]]:
    """(partition, offset) of the record each lagging partition waits on; None: its first.

    With no commit the group starts where `start:` says: `earliest` is the first record;
    `latest` is wherever the end was when the consumer joined, which is not known.
    """
    positions: list[tuple[int, int | None]] = []
    for p in lag:
        if p.lag <= 0:
            continue
        if p.committed is not None:
            positions.append((p.partition, p.committed))
        elif binding.start == "earliest":
            positions.append((p.partition, None))
    return positions


def _read(
    properties: Mapping[str, str], topic: str, partition: int, offset: int | None, limit: int
) -> list[ConsumedRecord]:
    return read_partition(properties, topic, partition, offset, limit)


def _scan(
    binding: Binding,
    properties: Mapping[str, str],
    lag: Iterable[PartitionLag],
    read: RecordReader,
) -> list[tuple[BlockedPartition, bool]]:
    """Each blocked partition, and whether its record is the very one the group's position
    points at (True) or lies further on, past records the group has not committed."""
    if not binding.keyed:
        return []
    blocked = []
    for partition, offset in read_positions(binding, lag):
        records = read(properties, binding.topic, partition, offset, SCAN_LIMIT)
        for index, record in enumerate(records):
            reason = blocking_reason(binding, record.key)
            if reason is not None:
                key_hex = None if record.key is None else record.key.hex(" ")
                at = record.offset
                found = BlockedPartition(binding.topic, partition, at, reason, key_hex)
                blocked.append((found, index == 0))
                break  # the consumer stops at the first one
    return blocked


def find_blocked(
    binding: Binding,
    properties: Mapping[str, str],
    lag: Iterable[PartitionLag],
    read: RecordReader = _read,
) -> list[BlockedPartition]:
    """The partitions of `binding` with a record Restate cannot deliver, at or after the
    group's position: the first such record of each (blocking I/O)."""
    return [b for b, _ in _scan(binding, properties, lag, read)]


async def _scan_live(
    spec: BindingsFile, binding: Binding, topics: TopicAdmin, read: RecordReader
) -> list[tuple[BlockedPartition, bool]]:
    properties = spec.clusters[binding.cluster].properties
    lag = await asyncio.to_thread(topics.group_lag, binding.consumer_group, binding.topic)
    return await asyncio.to_thread(_scan, binding, properties, lag, read)


async def diagnose(
    spec: BindingsFile,
    binding: Binding,
    topic_admin: TopicAdminFactory = TopicAdmin,
    read: RecordReader = _read,
) -> list[BlockedPartition]:
    """Read the binding's group lag, then the records each lagging partition waits on."""
    topics = topic_admin(spec.clusters[binding.cluster].properties)
    return [b for b, _ in await _scan_live(spec, binding, topics, read)]


# --- unblock ---------------------------------------------------------------------------------


@dataclass
class UnblockReport:
    binding: str
    group: str
    blocked: list[BlockedPartition] = field(default_factory=list)
    dead_letter_topic: str | None = None  # None with force_drop: the records were dropped
    # partition -> the group's committed offset after unblock
    offsets: dict[int, int] = field(default_factory=dict)
    deleted_subscriptions: list[str] = field(default_factory=list)
    created_subscriptions: list[str] = field(default_factory=list)
    # Blocked when looked at, but Restate's consumer had not reached the record yet when it
    # left the group: nothing was moved for these, the recreated subscription will block again.
    not_reached: list[BlockedPartition] = field(default_factory=list)

    @property
    def nothing_blocked(self) -> bool:
        return not self.blocked and not self.not_reached


def find_binding(spec: BindingsFile, name: str) -> Binding:
    return spec.binding_named(name, UnblockError)


def dead_letter_message(
    binding: Binding, blocked: BlockedPartition, record: ConsumedRecord, subscription_id: str | None
) -> Record:
    """The dead-letter record for a record moved aside, in the bound handler's format.

    Its Kafka key is the raw key, and the letter's `key_base64` keeps it in the JSON too.
    The envelope's id depends only on the record's coordinates: moving it aside twice (a
    rerun after a crash) gives the same event.
    """
    timestamp = (
        None
        if record.timestamp_ms is None
        else datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
    )
    coords = KafkaCoordinates(
        record.topic, record.partition, record.offset, timestamp, record.key, subscription_id
    )
    message = (
        f"{blocked.reason}: Restate's subscription cannot route it to an object; "
        "moved aside by restate-stream unblock"
    )
    letter = DeadLetter.of(binding.name, coords, record.value or b"", UNROUTABLE_KEY, message, 0)
    where = f"{binding.name}/{record.topic}/{record.partition}/{record.offset}"
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"restate-stream:unblock:{where}"))
    now = datetime.now(UTC).isoformat()
    payload = cloudevent_json(
        event_id,
        DEAD_LETTER_TYPE,
        "restate-stream",
        now,
        json_text(LetterKeys.from_env().signed(letter.to_json(), DEAD_LETTER_TYPE)),
    )
    return Record(record.key, payload)


def _refusal(spec: BindingsFile, binding: Binding, blocked: list[BlockedPartition]) -> str:
    records = "; ".join(f"{b.topic}[{b.partition}]@{b.offset} ({b.reason})" for b in blocked)
    return (
        f"binding {binding.name} sets no dead_letter topic, so unblocking would drop "
        f"{len(blocked)} record(s): {records}. Set `dead_letter: <topic>` on the binding in "
        f"{spec.path} and run apply, or pass --force-drop to drop them"
    )


def _not_reached(binding: Binding, ahead: list[BlockedPartition], window: float) -> str:
    where = ", ".join(f"{b.topic}[{b.partition}]@{b.offset}" for b in ahead)
    return (
        f"binding {binding.name}: {where} cannot be delivered, but Restate's consumer in group "
        f"{binding.consumer_group} was not seen failing on it within {window:.0f}s, so the "
        "records before it may not all be handed to Restate yet, and moving the group's "
        "offset past it would skip them. Nothing was changed. If the binding is paused, "
        "resume it; then run unblock again once the partition has stopped there"
    )


async def _wait_group_empty(topics: TopicAdmin, group: str, timeout: float) -> None:
    try:
        await apoll(
            lambda: asyncio.to_thread(topics.group_has_members, group),
            until=lambda members: not members,
            what=f"group {group!r} to have no members",
            timeout=timeout,
        )
    except PollTimeout:
        raise UnblockError(
            f"Restate's consumer is still in group {group!r} {timeout:.0f}s after its "
            "subscription was deleted; offsets can only be moved in an empty group. "
            "Run unblock again (it recreates the subscription either way)"
        ) from None


async def _recreate(
    spec: BindingsFile, binding: Binding, admin: AdminClient, topic_admin: TopicAdminFactory
) -> list[str]:
    """Create the binding's subscription as apply would, touching no other binding."""
    _, report = await apply_bindings(spec, admin, topic_admin=topic_admin, only=binding.name)
    if not report.ok:
        raise UnblockError(
            f"recreating the subscription of {binding.name} failed; run "
            f"`restate-stream apply -f {spec.path}`:\n{report.render()}"
        )
    return [o.detail for o in report.outcomes if o.detail]


async def _consumer_restarts(topics: TopicAdmin, group: str, window: float) -> bool:
    """Whether the group's consumer is replaced within `window` seconds: Restate recreates
    its consumer each time the consumer task fails (every second or two on a bad record)."""
    first = await asyncio.to_thread(topics.group_member_ids, group)
    try:
        await apoll(
            lambda: asyncio.to_thread(topics.group_member_ids, group),
            until=lambda now: bool(now - first or (first and not first <= now)),
            what=f"a new consumer in group {group!r}",
            timeout=window,
            interval=0.3,
        )
    except PollTimeout:
        return False
    return True


async def unblock(
    spec: BindingsFile,
    name: str,
    admin: AdminClient,
    *,
    force_drop: bool = False,
    topic_admin: TopicAdminFactory = TopicAdmin,
    read: RecordReader = _read,
    group_timeout: float = GROUP_LEAVE_TIMEOUT,
    restart_window: float = RESTART_WINDOW,
) -> UnblockReport:
    """Move binding `name` past the records its subscription cannot deliver.

    Nothing is lost: each record is on the dead-letter topic (acknowledged) before the
    group's offset moves past it, and the offset moves only once no consumer is left in the
    group. Nothing else is skipped: the group's committed offset often lags behind the record
    (Restate commits every few seconds and its consumer keeps failing before that), so the
    move also passes the records in between; it does so only when they were handed to
    Restate, i.e. when Restate's consumer is seen failing (restarting) while the record is
    the first undeliverable one after the group's position. Restate deduplicates Kafka
    records per (group, topic, partition, offset), so those records are not run twice either
    way.
    """
    binding = find_binding(spec, name)
    report = UnblockReport(binding.name, binding.consumer_group)
    topics = topic_admin(spec.clusters[binding.cluster].properties)
    scanned = await _scan_live(spec, binding, topics, read)
    if not scanned:
        return report
    blocked = [b for b, _ in scanned]
    if binding.dead_letter is None and not force_drop:
        raise UnblockError(_refusal(spec, binding, blocked))
    subscriptions = by_binding_key(await admin.list_subscriptions()).get(binding_key(binding), [])
    ahead = [b for b, at_position in scanned if not at_position]
    if ahead and not (
        subscriptions and await _consumer_restarts(topics, binding.consumer_group, restart_window)
    ):
        raise UnblockError(_not_reached(binding, ahead, restart_window))

    properties = spec.clusters[binding.cluster].properties
    for sub in subscriptions:
        await admin.delete_subscription(sub.id)
        report.deleted_subscriptions.append(sub.id)
    try:
        await _wait_group_empty(topics, binding.consumer_group, group_timeout)
        # Again, from the offsets the consumer committed as it left.
        settled = [b for b, _ in await _scan_live(spec, binding, topics, read)]
        settled_at = {(b.partition, b.offset) for b in settled}
        report.not_reached = [b for b in blocked if (b.partition, b.offset) not in settled_at]
        report.blocked = [b for b in settled if b in blocked]
        if not report.blocked:
            return report
        if binding.dead_letter is not None:
            sub_id = subscriptions[0].id if subscriptions else None
            letters = []
            for b in report.blocked:
                found = await asyncio.to_thread(read, properties, b.topic, b.partition, b.offset, 1)
                record = found[0] if found else None
                if record is None or record.offset != b.offset:
                    raise UnblockError(f"{b.topic}[{b.partition}]@{b.offset} is gone; not moving")
                letters.append(dead_letter_message(binding, b, record, sub_id))
            # Acknowledged by the broker (or an error) before any offset moves.
            await asyncio.to_thread(
                produce_records,
                properties["bootstrap.servers"],
                binding.dead_letter,
                letters,
                config=properties,
            )
            report.dead_letter_topic = binding.dead_letter
        report.offsets = {b.partition: b.offset + 1 for b in report.blocked}
        await asyncio.to_thread(
            topics.set_group_offsets, binding.consumer_group, binding.topic, report.offsets
        )
    finally:
        # Even after a failure: the other partitions of the binding keep flowing.
        if subscriptions and not binding.paused:
            report.created_subscriptions = await _recreate(spec, binding, admin, topic_admin)
    return report

"""Blocked partitions without engines: why a record blocks, where diagnosis reads, the
dead-letter record unblock writes, and when unblock refuses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from connectors import PartitionLag, TopicAdmin
from connectors.consume import ConsumedRecord
from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.cli.bindings import render_unblock
from restate_stream.cli.status import render_text
from restate_stream.control.admin import AdminClient
from restate_stream.control.blocked import (
    SCAN_LIMIT,
    BlockedPartition,
    UnblockError,
    UnblockReport,
    blocking_reason,
    dead_letter_message,
    find_blocked,
    read_positions,
    unblock,
)
from restate_stream.control.status import BindingStatus
from restate_stream.runtime.dead_letter import parse_record
from restate_stream.testing import bindings_yaml


def _spec(
    *, start: str = "earliest", dead_letter: str | None = "orders.dlq", **fields: Any
) -> BindingsFile:
    """One keyed binding `orders` with `fields` added."""
    binding = {"name": "orders", "topic": "orders", "handler": "Orders/handle", "start": start}
    if dead_letter is not None:
        binding["dead_letter"] = dead_letter
    text = bindings_yaml(clusters={"local": "k:9092"}, bindings=[{**binding, **fields}])
    return parse_bindings(text, Path("b.yaml"), {})


def _record(offset: int, key: bytes | None, value: bytes = b'{"id": 1}') -> ConsumedRecord:
    return ConsumedRecord("orders", 0, offset, key, value, 1_700_000_000_000)


class FakeReader:
    """Partition 0 holds `records` from offset 0; remembers what was asked."""

    def __init__(self, records: list[ConsumedRecord]) -> None:
        self.records = records
        self.calls: list[tuple[int, int | None, int]] = []

    def __call__(
        self, properties: Mapping[str, str], topic: str, partition: int, offset: int | None, n: int
    ) -> list[ConsumedRecord]:
        self.calls.append((partition, offset, n))
        start = 0 if offset is None else offset
        return [r for r in self.records if r.offset >= start][:n]


def test_a_key_that_is_not_utf8_blocks_a_keyed_binding_only() -> None:
    binding = _spec().bindings[0]
    assert blocking_reason(binding, b"\xff\xfe") == "key is not UTF-8 text (ff fe)"
    assert blocking_reason(binding, "café".encode()) is None
    assert blocking_reason(binding, None) is None, "keyless records go to the object ''"
    unkeyed = dataclasses.replace(binding, keyed=False)
    assert blocking_reason(unkeyed, b"\xff\xfe") is None


def test_read_positions_follow_the_commit_or_the_start() -> None:
    lag = [
        PartitionLag(0, 17, 20, 3),
        PartitionLag(1, None, 4, 4),
        PartitionLag(2, 9, 9, 0),
    ]
    assert read_positions(_spec().bindings[0], lag) == [(0, 17), (1, None)]
    # `latest` with no commit starts where the end was when the consumer joined: unknown.
    assert read_positions(_spec(start="latest").bindings[0], lag) == [(0, 17)]


def test_find_blocked_names_the_first_bad_record_after_the_group_position() -> None:
    binding = _spec().bindings[0]
    reader = FakeReader(
        [_record(0, b"a"), _record(1, b"b"), _record(2, b"\xff\xfe"), _record(3, b"\xc3")]
    )
    lag = [PartitionLag(0, None, 4, 4)]
    found = find_blocked(binding, {}, lag, reader)
    assert found == [BlockedPartition("orders", 0, 2, "key is not UTF-8 text (ff fe)", "ff fe")]
    assert reader.calls == [(0, None, SCAN_LIMIT)]
    # Past the bad records, nothing blocks; with no lag nothing is read at all.
    assert find_blocked(binding, {}, [PartitionLag(0, 4, 4, 0)], reader) == []
    assert find_blocked(dataclasses.replace(binding, keyed=False), {}, lag, reader) == []


def test_status_names_the_partition_offset_reason_and_the_command() -> None:
    status = BindingStatus("orders", "kafka://local/orders", "service://O/h", "g", "active")
    status.lag = [PartitionLag(0, None, 4, 4)]
    status.blocked = [BlockedPartition("orders", 0, 17, "key is not UTF-8 text (ff fe)", "ff fe")]
    text = render_text([status])
    assert (
        "orders: blocked p0@17: key is not UTF-8 text (ff fe); run restate-stream unblock orders"
        in text
    )
    assert status.to_json()["blocked"][0]["key_bytes_hex"] == "ff fe"


def test_dead_letter_message_keeps_the_raw_key_value_and_coordinates() -> None:
    binding = _spec().bindings[0]
    blocked = BlockedPartition("orders", 0, 2, "key is not UTF-8 text (ff fe)", "ff fe")
    record = _record(2, b"\xff\xfe", b'{"id": 7}')
    message = dead_letter_message(binding, blocked, record, "sub_1")
    assert message.key == b"\xff\xfe"
    assert isinstance(message.value, bytes)
    letter = parse_record(message.value).to_json()
    assert letter["binding"] == "orders"
    assert letter["source"]["topic"] == "orders"
    assert (letter["source"]["partition"], letter["source"]["offset"]) == (0, 2)
    assert letter["source"]["subscription_id"] == "sub_1"
    assert letter["error"]["type"] == "UnroutableKey"
    assert "key is not UTF-8 text (ff fe)" in letter["error"]["message"]
    assert letter["key_base64"] == "//4=" and letter["value"] == '{"id": 7}'
    again = dead_letter_message(binding, blocked, record, "sub_1")
    assert isinstance(again.value, bytes)
    assert b'"id":"' in message.value
    # The same record moved aside twice (a rerun after a crash) is the same event.
    event_id = message.value.split(b'"id":"')[1].split(b'"')[0]
    assert event_id == again.value.split(b'"id":"')[1].split(b'"')[0]


class FakeTopics:
    def __init__(self, lag: list[PartitionLag]) -> None:
        self.lag = lag
        self.committed: dict[int, int] = {}

    def group_lag(self, group: str, topic: str) -> list[PartitionLag]:
        return self.lag

    def group_member_ids(self, group: str) -> frozenset[str]:
        return frozenset()

    def set_group_offsets(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        self.committed.update(offsets)


class FakeAdmin:
    async def list_subscriptions(self) -> list[Any]:
        return []


async def _unblock(
    spec: BindingsFile, name: str, topics: FakeTopics, reader: FakeReader, **options: Any
) -> UnblockReport:
    return await unblock(
        spec,
        name,
        cast(AdminClient, FakeAdmin()),
        topic_admin=lambda _: cast(TopicAdmin, topics),
        read=reader,
        **options,
    )


async def test_unblock_without_a_dead_letter_topic_refuses_and_names_what_it_would_drop() -> None:
    spec = _spec(dead_letter=None, retry={"max_attempts": 2})
    topics = FakeTopics([PartitionLag(0, 2, 4, 2)])
    reader = FakeReader([_record(2, b"\xff\xfe")])
    with pytest.raises(UnblockError, match=r"would drop 1 record\(s\): orders\[0\]@2 \(key is"):
        await _unblock(spec, "orders", topics, reader)
    assert topics.committed == {}, "nothing moved"


async def test_unblock_refuses_to_skip_records_the_consumer_may_not_have_reached() -> None:
    # The group committed offset 0; the bad record is at 2, and no consumer is seen failing.
    topics = FakeTopics([PartitionLag(0, 0, 4, 4)])
    reader = FakeReader([_record(0, b"a"), _record(1, b"b"), _record(2, b"\xff\xfe")])
    with pytest.raises(UnblockError, match=r"orders\[0\]@2 cannot be delivered.*Nothing was"):
        await _unblock(_spec(), "orders", topics, reader, restart_window=0.5)
    assert topics.committed == {}


async def test_unblock_with_nothing_blocked_changes_nothing() -> None:
    topics = FakeTopics([PartitionLag(0, 2, 4, 2)])
    reader = FakeReader([_record(2, b"ok"), _record(3, b"ok")])
    report = await _unblock(_spec(), "orders", topics, reader)
    assert report.nothing_blocked and topics.committed == {}
    assert render_unblock(report) == "orders: nothing blocked (group restate-stream.orders)"
    with pytest.raises(UnblockError, match="no binding named 'nope'"):
        await _unblock(_spec(), "nope", topics, reader)


def test_render_unblock_says_where_the_record_went_and_where_the_group_resumes() -> None:
    blocked = BlockedPartition("orders", 0, 5, "key is not UTF-8 text (ff fe)", "ff fe")
    report = UnblockReport("orders", "g", [blocked], "orders.dlq", {0: 6}, ["sub_a"], ["sub_b"])
    text = render_unblock(report)
    assert (
        "orders p0@5 (key is not UTF-8 text (ff fe), key ff fe): dead-lettered to orders.dlq"
        in text
    )
    assert "group g: p0 now resumes at offset 6" in text
    assert "subscription recreated: sub_b" in text
    dropped = dataclasses.replace(report, dead_letter_topic=None)
    assert "DROPPED (--force-drop)" in render_unblock(dropped)

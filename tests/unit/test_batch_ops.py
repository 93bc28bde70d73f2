"""Operating batched bindings without engines: which invocations status selects, the runner
following the bindings file (pause/resume), and the redrive of a batch record."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.consume import ConsumedRecord
from restate_stream.batch import BatchRunner, decode_batch
from restate_stream.batch.delivery import BatchDelivery
from restate_stream.bindings import BatchSpec, Binding, load_bindings
from restate_stream.bindings.edit import set_delivery, set_paused
from restate_stream.control.status import _invocations_of
from restate_stream.dlq import StoredLetter, by_source_record, parse_entry, redrive_request
from restate_stream.runtime.bound import TOMBSTONE_ERROR
from restate_stream.runtime.dead_letter import DEAD_LETTER_TYPE, REDRIVE_OF_HEADER, DeadLetter
from restate_stream.runtime.event import KafkaCoordinates, object_key_for
from restate_stream.runtime.formats import cloudevent
from restate_stream.testing import bindings_yaml, wait_until

BATCH = BatchSpec(max_records=10)
BATCHED = Binding("items", "items", "local", "Items", "on_items", dead_letter="items.dlq")
BATCHED = dataclasses.replace(BATCHED, batch=BATCH)


# --- status ------------------------------------------------------------------------------------


def test_status_selects_a_batched_bindings_sends_by_target_and_idempotency_key() -> None:
    where = _invocations_of(BATCHED, [])
    assert where is not None
    assert "target_service_name = 'Items'" in where
    assert "target_handler_name = 'on_items'" in where
    assert "starts_with(idempotency_key, 'rs-batch-')" in where
    assert "starts_with(idempotency_key, 'redrive/items/')" in where
    unbatched = dataclasses.replace(BATCHED, batch=None)
    assert _invocations_of(unbatched, []) is None  # no subscription: no invocations
    assert _invocations_of(unbatched, ["sub_1"]) == "invoked_by_subscription_id IN ('sub_1')"


# --- the runner follows the file ----------------------------------------------------------------


def write(path: Path, *, batched: bool = True, paused: bool = False) -> None:
    binding: dict[str, Any] = {"name": "items", "topic": "items", "handler": "Items/on_items"}
    if batched:
        binding["batch"] = {"max_records": 10, "max_wait": "10ms"}
    if paused:
        binding["paused"] = True
    path.write_text(bindings_yaml(clusters={"local": "127.0.0.1:9"}, bindings=[binding]))


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Deliveries that run until stopped, without Kafka: their starts and stops, in order."""
    events: list[str] = []

    async def run(self: BatchDelivery, stop: asyncio.Event) -> None:
        events.append(f"start {self.binding.name}")
        await stop.wait()
        events.append(f"stop {self.binding.name}")

    monkeypatch.setattr(BatchDelivery, "run", run)
    return events


async def test_pause_and_resume_in_the_file_stop_and_start_a_running_delivery(
    tmp_path: Path, runs: list[str]
) -> None:
    path = tmp_path / "bindings.yaml"
    write(path)
    runner = BatchRunner(load_bindings(path), watch_interval=0.01)
    await runner.start()
    try:
        await wait_until(lambda: asyncio.sleep(0, list(runs)), lambda r: r == ["start items"])
        assert set_paused(path, "items", True)
        await wait_until(lambda: asyncio.sleep(0, runner.running), lambda r: not r)
        assert runs == ["start items", "stop items"]
        path.write_text("bindings: [{")  # mid-edit, broken: nothing changes
        write(path, paused=False)
        await wait_until(lambda: asyncio.sleep(0, runner.running), lambda r: r == {"items"})
        write(path, batched=False)  # switched to unbatched: its consumer must leave the group
        await wait_until(lambda: asyncio.sleep(0, runner.running), lambda r: not r)
    finally:
        await runner.stop()
    assert runs == ["start items", "stop items", "start items", "stop items"]


async def test_a_runner_started_paused_starts_on_resume(tmp_path: Path, runs: list[str]) -> None:
    path = tmp_path / "bindings.yaml"
    write(path, paused=True)
    runner = BatchRunner(load_bindings(path), watch_interval=0.01)
    assert runner, "a paused batched binding still needs the runner, for resume"
    await runner.start()
    try:
        assert runner.running == set()
        set_paused(path, "items", False)
        await wait_until(lambda: asyncio.sleep(0, runner.running), lambda r: r == {"items"})
    finally:
        await runner.stop()
    assert runs == ["start items", "stop items"]


# --- redrive -----------------------------------------------------------------------------------


def letter(key: bytes | None, raw: bytes, error: str = "TerminalError") -> StoredLetter:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    coords = KafkaCoordinates("items", 1, 42, ts, key, None)
    dead = DeadLetter.of("items", coords, raw, error, "refused", 1)
    value = cloudevent("id", DEAD_LETTER_TYPE, "restate-stream", "now", dead.to_json())
    kafka_key = None if coords.key_text is None else coords.key_text.encode()
    entry = parse_entry(ConsumedRecord("items.dlq", 0, 7, kafka_key, value, 1))
    assert isinstance(entry, StoredLetter)
    return entry


def test_a_batch_record_is_redriven_as_a_one_record_batch_to_its_object() -> None:
    key = b"\xff\xfeitem"  # not UTF-8: the letter keeps it in key_base64
    (history,) = by_source_record([letter(key, b'{"seq": 1}')], "items").records
    request = redrive_request(BATCHED, history)
    assert object_key_for(key) == "b64://5pdGVt"
    assert request.path == "Items/b64%3A%2F%2F5pdGVt/on_items"  # escaped for the URL path
    assert request.headers == {
        "content-type": "application/json",
        REDRIVE_OF_HEADER: "items.dlq/0/7",
    }
    assert request.idempotency_key.startswith("redrive/items/0/7/")
    (record,) = decode_batch(request.body)
    assert (record.topic, record.partition, record.offset) == ("items", 1, 42)
    assert (record.key, record.value) == (key, b'{"seq": 1}')
    assert record.timestamp_ms == 1767323045678


def test_a_redriven_tombstone_is_null_again_and_a_keyless_record_goes_to_object_empty() -> None:
    (history,) = by_source_record([letter(None, b"", TOMBSTONE_ERROR)], "items").records
    request = redrive_request(BATCHED, history)
    assert request.path == "Items//on_items"
    (record,) = decode_batch(request.body)
    assert record.key is None and record.value is None
    (history,) = by_source_record([letter(b"k", b"")], "items").records
    (record,) = decode_batch(redrive_request(BATCHED, history).body)
    assert record.value == b"", "an empty value that was not a tombstone stays empty"


def test_a_per_partition_record_is_redriven_to_its_partition_object() -> None:
    per_partition = dataclasses.replace(
        BATCHED, batch=BATCH.model_copy(update={"per": "partition"})
    )
    (history,) = by_source_record([letter(b"user-1", b'{"seq": 1}')], "items").records
    request = redrive_request(per_partition, history)
    assert request.path == "Items/items%2F1/on_items"  # the letter's source is items[1]
    (record,) = decode_batch(request.body)
    assert (record.key, record.partition, record.offset) == (b"user-1", 1, 42)


async def test_a_per_record_binding_moved_onto_the_consumer_starts_there_and_stops_back(
    tmp_path: Path, runs: list[str]
) -> None:
    """`migrate` edits `delivery:`; a worker that served the binding by subscription starts
    its consumer (the bound handler is the same), and stops it when it moves back."""
    path = tmp_path / "bindings.yaml"
    write(path, batched=False)
    runner = BatchRunner(load_bindings(path), watch_interval=0.01)
    # Every worker runs the runner, with no consumer to run too: it follows the file.
    await runner.start()
    try:
        assert runner.running == set()
        assert set_delivery(path, "items", "consumer")
        await wait_until(lambda: asyncio.sleep(0, runner.running), lambda r: r == {"items"})
        assert set_delivery(path, "items", "subscription")
        await wait_until(lambda: asyncio.sleep(0, runner.running), lambda r: not r)
    finally:
        await runner.stop()
    assert runs == ["start items", "stop items"]

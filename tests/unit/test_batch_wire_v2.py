"""The batch body's version 2: JSON values inline (raw bytes kept exactly), the topic once and
the key once per run; a value that is not JSON travels as base64 and is dead-lettered by the
worker as before; version 1 bodies are still read; a malformed body is a WireError naming
the record and field."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import restate
from pydantic import BaseModel

from restate_stream.batch import high_water_state
from restate_stream.batch.wire import (
    NewerWireVersion,
    WireError,
    WireRecord,
    decode_batch,
    encode_batch,
)
from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent
from restate_stream.runtime.failures import RecordError, RejectedRecords
from restate_stream.runtime.formats.json import UNPARSED
from restate_stream.testing import MemoryContext, MemoryPublisher, bindings_yaml, invoke

MS = 1_700_000_000_123

RECORDS = [
    # Spacing, key order, escapes and a big float: the raw value must come back byte for byte.
    WireRecord("t", 0, 7, MS, b"k", b'{"b": 1, "a": [1.5e300, "\\u00e9"]}', (("h", b"\x00"),)),
    WireRecord("t", 0, 8, None, b"k", b"not json"),  # a poison value: base64
    WireRecord("t", 0, 9, MS, b"k", None, (("e", None),)),  # a tombstone
    WireRecord("u", 1, 3, MS, b"\xff", b"NaN"),  # json reads it, orjson does not: base64
    WireRecord("u", 1, 4, MS, b"\xff", b'  "text"\n'),
    WireRecord("t", 0, 10, MS, None, b"[" * 1000 + b"]" * 1000),  # too deep to go inline
]


def test_v2_round_trip_keeps_values_exactly_and_parses_json_ones_once() -> None:
    decoded = decode_batch(encode_batch(RECORDS, json_values=True))
    assert [r._replace(parsed=UNPARSED) for r in decoded] == RECORDS
    parsed = [r.parsed for r in decoded]
    assert parsed[0] == {"b": 1, "a": [1.5e300, "é"]}
    assert parsed[4] == "text"
    assert [p is UNPARSED for p in parsed] == [False, True, True, True, False, True]


def test_v2_without_json_values_carries_every_value_as_base64() -> None:
    decoded = decode_batch(encode_batch(RECORDS))
    assert decoded == RECORDS
    assert all(r.parsed is UNPARSED for r in decoded)


def test_v2_body_writes_the_topic_once_and_a_key_once_per_run() -> None:
    doc = json.loads(encode_batch(RECORDS, json_values=True))
    assert doc["t"] == ["t", "u"]
    assert [run[0] for run in doc["r"]] == ["aw==", "/w==", None]
    assert [len(run[1]) for run in doc["r"]] == [3, 2, 1]
    assert doc["r"][0][1][1] == [0, 0, 8, None, None, 2, "bm90IGpzb24="]
    assert doc["r"][0][1][2] == [0, 0, 9, MS, [["e", None]], 0, None]
    assert len(doc["at"]) == 4  # two values inline
    assert json.loads(encode_batch([])) == {"v": 2, "r": [], "t": [], "at": []}


def test_a_v1_body_is_still_read() -> None:
    v1 = {
        "v": 1,
        "records": [
            {"t": "t", "p": 0, "o": 7, "ts": MS, "k": "aw==", "v": "eyJhIjoxfQ==",
             "h": [["h", "AA=="]]},
            {"t": "t", "p": 0, "o": 8, "ts": None, "k": None, "v": None, "h": []},
        ],
    }  # fmt: skip
    assert decode_batch(json.dumps(v1).encode()) == [
        WireRecord("t", 0, 7, MS, b"k", b'{"a":1}', (("h", b"\x00"),)),
        WireRecord("t", 0, 8, None, None, None),
    ]


def _v2(runs: Any, topics: Any = ("t",), at: Any = ()) -> bytes:
    return orjson.dumps({"v": 2, "r": runs, "t": list(topics), "at": list(at)})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"v": 0, "r": []}', 'expected {"v": 4'),
        (b'{"v": 2, "r": []}', '"r", "t" and "at" arrays'),
        (_v2([], topics=[1]), "t: expected topic names"),
        (_v2([["aw=="]]), "r[0]: expected [key, [record, ...]]"),
        (_v2([["%%", []]]), "r[0] key: invalid base64"),
        (_v2([[None, [[0, 0, 1]]]]), "r[0][0]: expected [topic, partition, offset"),
        (_v2([[None, [[0, 0, "1", None, None, 0, None]]]]), "r[0][0]: expected topic index"),
        (_v2([[None, [[5, 0, 1, None, None, 0, None]]]]), "r[0][0]: topic index 5 not in t"),
        (_v2([[None, [[0, 0, 1, "x", None, 0, None]]]]), "r[0][0] ts: expected milliseconds"),
        (_v2([[None, [[0, 0, 1, None, [["h"]], 0, None]]]]), "r[0][0] headers: expected"),
        (_v2([[None, [[0, 0, 1, None, None, 2, "%%"]]]]), "r[0][0] value: invalid base64"),
        (_v2([[None, [[0, 0, 1, None, None, 2, 5]]]]), "r[0][0] value: expected form 0"),
        (_v2([[None, [[0, 0, 1, None, None, 0, 5]]]]), "r[0][0] value: expected form 0"),
        (_v2([[None, [[0, 0, 1, None, None, 1, 5]]]]), "r[0][0] value: inline, but no place"),
        (_v2([[None, [[0, 0, 1, None, None, 1, 5]]]], at=[0, 10**6]),
         "r[0][0] value: at[0:2] is not within the body"),
        (_v2([[None, [[0, 0, 1, None, None, 1, 5]]]], at=[5, 3]), "not within the body"),
        (_v2([[None, []]], at=[0, 1]), "at: 2 numbers for 0 inline values"),
    ],
)  # fmt: skip
def test_malformed_v2_bodies_name_the_record_and_field(body: bytes, message: str) -> None:
    with pytest.raises(WireError) as raised:
        decode_batch(body)
    assert message in str(raised.value)


class Item(BaseModel):
    n: int


def spec(service: str, fmt: str = "json", per: str = "key") -> BindingsFile:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        worker={"app": "app:app"},
        bindings=[
            {
                "name": "b",
                "topic": "t",
                "format": fmt,
                "dead_letter": "t.dlq",
                "handler": f"{service}/take",
                "batch": {"max_records": 10, "max_wait": "10ms", "per": per},
            }
        ],
    )
    return parse_bindings(text, Path("bindings.yaml"), {})


async def test_a_body_of_a_newer_version_is_retried_not_failed_terminally() -> None:
    """A newer worker's delivery may write a version this worker does not read (a rolling
    upgrade): a TerminalError would drop its records, so the invocation is retried instead
    (Restate pauses it after the retry policy's attempts: a newer worker can resume it)."""
    obj = restate.VirtualObject("WireNewer")
    seen: list[KafkaEvent[Item]] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
        seen.extend(events)

    publisher = MemoryPublisher()
    bind([obj], spec("WireNewer"), {"local": publisher})
    body = b'{"v": 5, "columns": {}}'
    with pytest.raises(NewerWireVersion) as raised:
        await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
    assert not isinstance(raised.value, restate.TerminalError)
    assert "binding b: batch body version 5: this worker reads versions 1 to 4" in str(raised.value)
    assert seen == [] and publisher.sent == []  # nothing applied, nothing dead-lettered
    # A body that is no version restate-stream writes still fails visibly, at once.
    with pytest.raises(restate.TerminalError, match=re.escape('expected {"v": 4')):
        await invoke(obj, "take", MemoryContext("k"), b'{"v": -1}')


async def test_a_poison_value_in_v2_is_dead_lettered_with_its_reason_and_place() -> None:
    obj = restate.VirtualObject("WireV2Poison")
    seen: list[tuple[int, Item, bytes]] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
        seen.extend((e.offset, e.value, e.raw) for e in events)

    publisher = MemoryPublisher()
    bind([obj], spec("WireV2Poison"), {"local": publisher})
    body = encode_batch(
        [
            WireRecord("t", 0, 1, None, b"k", b'{"n": 1}'),
            WireRecord("t", 0, 2, None, b"k", b'{"n": '),  # not JSON
            WireRecord("t", 0, 3, None, b"k", b'{"n": "x"}'),  # JSON, not an Item
            WireRecord("t", 0, 4, None, b"k", b'{ "n" : 4 }'),
        ],
        json_values=True,
    )
    await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
    assert seen == [(1, Item(n=1), b'{"n": 1}'), (4, Item(n=4), b'{ "n" : 4 }')]
    letters = [
        (m.value["source"]["offset"], m.value["error"]["type"], m.value["value"])
        for m in publisher.sent
    ]
    assert letters == [(2, "DecodeError", '{"n": '), (3, "DecodeError", '{"n": "x"}')]
    assert {m.value["source"]["topic"] for m in publisher.sent} == {"t"}
    assert "invalid JSON" in publisher.sent[0].value["error"]["message"]


async def test_a_failed_inline_value_is_dead_lettered_byte_for_byte() -> None:
    obj = restate.VirtualObject("WireV2Fails")

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
        for e in events:
            e.value["mutated"] = True  # what the letter carries is the record, not this
        raise restate.TerminalError("no")

    publisher = MemoryPublisher()
    bind([obj], spec("WireV2Fails"), {"local": publisher})
    raw = b'{"z": 1,  "a": "\\u00e9"}'
    body = encode_batch([WireRecord("t", 0, 1, None, b"k", raw)], json_values=True)
    assert raw in body  # inline, not base64
    await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
    [letter] = publisher.sent
    assert letter.value["value"] == raw.decode()


async def test_batch_events_build_coordinates_only_when_asked_and_equal_plain_events() -> None:
    obj = restate.VirtualObject("WireV2Lazy")
    events: list[KafkaEvent[Any]] = []
    built_before: list[bool] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, batch: list[KafkaEvent[Any]]) -> None:
        events.extend(batch)
        built_before.extend("coordinates" in vars(e) for e in batch)

    bind([obj], spec("WireV2Lazy"), {"local": MemoryPublisher()})
    body = encode_batch([WireRecord("t", 2, 5, MS, b"k", b'"x"', (("h", b"v"),))])
    await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
    [event] = events
    assert built_before == [False]  # not built for the handler (it did not ask)
    coords = KafkaCoordinates("t", 2, 5, datetime.fromtimestamp(MS / 1000, UTC), b"k", None)
    plain = KafkaEvent("x", "k", coords, b'"x"', None, None, (("h", b"v"),))
    assert event == plain and plain == event and hash(event) == hash(plain)
    assert event.coordinates is event.coordinates  # built once
    assert (event.topic, event.partition, event.offset) == ("t", 2, 5)
    moved = dataclasses.replace(event, coordinates=dataclasses.replace(coords, offset=6))
    assert moved.offset == 6 and event.offset == 5
    assert event != dataclasses.replace(plain, raw=b"other")


async def test_a_rejected_inline_record_is_dead_lettered_alone_with_its_place() -> None:
    obj = restate.VirtualObject("WireV2Rejects")

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
        bad = [(e, RecordError("Late", "too late")) for e in events if e.value["n"] == 2]
        raise RejectedRecords(bad)

    publisher = MemoryPublisher()
    bind([obj], spec("WireV2Rejects"), {"local": publisher})
    raw = b'{"n":  2}'
    records = [WireRecord("t", 0, 1, MS, b"k", b'{"n": 1}'), WireRecord("t", 0, 2, MS, b"k", raw)]
    ctx = MemoryContext("k", invocation_id="inv_1")
    await invoke(obj, "take", ctx, encode_batch(records, json_values=True))
    [letter] = publisher.sent
    assert letter.value["source"]["offset"] == 2 and letter.value["value"] == raw.decode()
    assert letter.value["error"]["type"] == "Late"
    assert ctx.state[high_water_state("b")] == {"t/0": 2}


async def test_inline_values_pass_unconverted_but_envelopes_are_still_unwrapped() -> None:
    """A parsed value is taken as it is for `dict[str, Any]` (no conversion, as before: the
    codec checks nothing for it), but a CloudEvents envelope is still unwrapped."""
    obj = restate.VirtualObject("WireV2Passthrough")
    seen: list[tuple[int, Any, str | None, str | None, bytes, Any]] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
        seen.extend((e.offset, e.value, e.event_id, e.event_type, e.raw, e.headers) for e in events)

    bind([obj], spec("WireV2Passthrough"), {"local": MemoryPublisher()})
    envelope = b'{"specversion": "1.0", "id": "e-1", "type": "clicked", "data": {"n": 2}}'
    not_envelope = b'{"specversion": "0.3", "n": 3}'  # no id, another version: a plain dict
    records = [
        WireRecord("t", 0, 1, MS, b"k", b'{"n": 1}', (("h", b"v"),)),
        WireRecord("t", 0, 2, MS, b"k", envelope),
        WireRecord("t", 0, 3, MS, b"k", not_envelope),
        WireRecord("t", 0, 4, MS, b"k", b"[1, 2]"),
    ]
    ctx = MemoryContext("k", invocation_id="inv_1")
    await invoke(obj, "take", ctx, encode_batch(records, json_values=True))
    assert seen == [
        (1, {"n": 1}, None, None, b'{"n": 1}', (("h", b"v"),)),
        (2, {"n": 2}, "e-1", "clicked", envelope, ()),
        (3, {"specversion": "0.3", "n": 3}, None, None, not_envelope, ()),
        (4, [1, 2], None, None, b"[1, 2]", ()),
    ]
    assert ctx.state[high_water_state("b")] == {"t/0": 4}


async def test_an_inline_value_of_another_plain_type_is_dead_lettered() -> None:
    obj = restate.VirtualObject("WireV2PlainType")
    seen: list[Any] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict]]) -> None:  # type: ignore[type-arg]
        seen.extend(e.value for e in events)

    publisher = MemoryPublisher()
    bind([obj], spec("WireV2PlainType"), {"local": publisher})
    records = [
        WireRecord("t", 0, 1, MS, b"k", b'{"n": 1}'),
        WireRecord("t", 0, 2, MS, b"k", b"[1, 2]"),  # JSON, not an object
        WireRecord("t", 0, 3, MS, b"k", b'{"specversion": "1.0", "id": "e", "data": 5}'),
    ]
    await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"),
                 encode_batch(records, json_values=True))  # fmt: skip
    assert seen == [{"n": 1}]
    letters = [(m.value["source"]["offset"], m.value["error"]["message"]) for m in publisher.sent]
    assert letters == [(2, "expected a JSON dict, got list"), (3, "expected a JSON dict, got int")]


async def test_an_inline_event_is_lazy_equal_and_replaceable_like_a_plain_one() -> None:
    obj = restate.VirtualObject("WireV2InlineLazy")
    events: list[KafkaEvent[Any]] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, batch: list[KafkaEvent[Any]]) -> None:
        assert not any("coordinates" in vars(e) for e in batch)
        events.extend(batch)

    bind([obj], spec("WireV2InlineLazy"), {"local": MemoryPublisher()})
    body = encode_batch([WireRecord("t", 2, 5, MS, b"k", b' "x"')], json_values=True)
    await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
    [event] = events
    coords = KafkaCoordinates("t", 2, 5, datetime.fromtimestamp(MS / 1000, UTC), b"k", None)
    plain = KafkaEvent("x", "k", coords, b' "x"')
    assert event == plain and plain == event and hash(event) == hash(plain)
    assert dataclasses.asdict(event) == dataclasses.asdict(plain)
    assert dataclasses.replace(event, event_id="x").event_id == "x" and event.event_id is None


@pytest.mark.parametrize(
    ("offsets", "high", "passed", "top"),
    [
        ([11, 12, 13], 10, [11, 12, 13], 13),  # wholly past the high-water: the common case
        ([9, 10, 11, 12], 10, [11, 12], 12),  # a redelivery overlapping the last send
        ([12, 9, 11], 10, [12, 11], 12),  # not ascending (no consumer writes it): per record
        ([8, 10], 10, [], 10),  # wholly redelivered: the high-water stays
    ],
)
async def test_one_sources_body_passes_exactly_the_records_past_its_high_water(
    offsets: list[int], high: int, passed: list[int], top: int
) -> None:
    obj = restate.VirtualObject("WireV2HighWater")
    seen: list[int] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None:
        seen.extend(e.offset for e in events)

    bind([obj], spec("WireV2HighWater"), {"local": MemoryPublisher()})
    ctx = MemoryContext("k", invocation_id="inv_1")
    ctx.state[high_water_state("b")] = {"t/0": high, "t/1": 99}
    records = [WireRecord("t", 0, o, MS, b"k", b"1") for o in offsets]
    await invoke(obj, "take", ctx, encode_batch(records, json_values=True))
    assert seen == passed
    assert ctx.state[high_water_state("b")] == {"t/0": top, "t/1": 99}

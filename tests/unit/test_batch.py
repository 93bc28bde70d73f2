"""Batched bindings without engines: the wire body, object keys, idempotency keys, the
`batch:` field's validation, the app check and the plan (no subscription)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import restate

from connectors.group_consumer import PolledRecord
from restate_stream.batch import (
    BatchSpec,
    WireError,
    WireRecord,
    decode_batch,
    encode_batch,
    high_water_state,
    idempotency_key,
)
from restate_stream.batch.objects import batch_object_key
from restate_stream.batch.sends import group_each, shape_for
from restate_stream.bindings import BindingsError, check_against_app, parse_bindings
from restate_stream.control.admin import Subscription
from restate_stream.control.plan import (
    CreateSubscription,
    DeleteSubscription,
    LiveState,
    compute_plan,
)
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import KafkaEvent, object_key_for
from restate_stream.testing import MemoryContext, MemoryPublisher, invoke

FILE = Path("conf/bindings.yaml")


def parse(text: str) -> Any:
    return parse_bindings(textwrap.dedent(text), FILE, {})


BATCHED = """\
kafka:
  clusters:
    local: {bootstrap.servers: "127.0.0.1:9092"}
bindings:
  - name: clicks
    topic: clicks
    handler: Clicks/on_clicks
    batch: {max_records: 500, max_wait: 50ms}
"""


def test_wire_round_trip_keeps_bytes_headers_and_nulls() -> None:
    records = [
        WireRecord("t", 0, 7, 1_700_000_000_000, b"\xff\xfe", b'{"a":1}', (("h", b"\x00"),)),
        WireRecord("t", 1, 8, None, None, None, (("empty", None),)),
    ]
    assert decode_batch(encode_batch(records)) == records


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"v": "1", "records": []}', '"v": 1'),
        (b'{"v": 1, "records": [{"t": "x", "p": 0}]}', "records[0]"),
        (b'{"v": 1, "records": [{"t": "x", "p": 0, "o": 1, "v": "%%"}]}', "records[0].v"),
        # Whichever field is bad is named, the other one good or bad.
        (b'{"v": 1, "records": [{"t": "x", "p": 0, "o": 1, "k": "%%", "v": "aw=="}]}',
         "records[0].k: invalid base64"),
        (b'{"v": 1, "records": [{"t": "x", "p": 0, "o": 1, "k": "aw==", "v": 5}]}',
         "records[0].v: expected base64 text or null, got int"),
        (b'{"v": 1, "records": [{"t": "x", "p": 0, "o": 1, "k": ["a"]}]}',
         "records[0].k: expected base64 text or null, got list"),
        (b'{"v": 1, "records": [{"t": "x", "p": 0, "o": 1, "v": "\\u00e9"}]}', "records[0].v"),
    ],
)  # fmt: skip
def test_malformed_bodies_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_batch(body)


def test_object_keys_are_injective_and_text_keys_stay_readable() -> None:
    assert object_key_for(b"user-1") == "user-1"
    assert object_key_for(None) == ""
    binary = object_key_for(b"\xff\xfe")
    assert binary == "b64://4="
    # A text key that looks like an encoded one is encoded too, so the two never collide.
    assert object_key_for(b"b64://4=") not in (binary, "b64://4=")
    assert object_key_for(b"b64://4=").startswith("b64:")


def _polled(partition: int, offsets: list[int]) -> list[PolledRecord]:
    return [PolledRecord("t", partition, o, None, b"k", b"v", ()) for o in offsets]


@pytest.mark.parametrize("per", ["key", "partition"])
def test_a_cut_groups_by_object_in_read_order_as_record_by_record_would(per: str) -> None:
    text = BATCHED.replace("max_wait: 50ms}", f"max_wait: 50ms, per: {per}}}")
    shape = shape_for(parse(text).bindings[0])
    keys = [b"a", None, b"", b"\xff", b"b64://4=", b"a", b"", None]
    records = [
        PolledRecord("clicks", i % 3, 100 + i, None, key, b"v", ())
        for i, key in enumerate(keys * 3)
    ]
    grouped = shape.group(records)
    assert grouped == group_each(records, shape.object_key)
    if per == "key":
        # None and b"" are both the object "": one group, in read order.
        assert [r.offset for r in grouped[""]] == sorted(r.offset for r in grouped[""])
        assert len(grouped[""]) == 12


def test_idempotency_key_names_exactly_the_records_of_a_send() -> None:
    first = idempotency_key("b", "k", _polled(0, [10, 11]))
    assert first == idempotency_key("b", "k", _polled(0, [10, 11]))
    # Cut differently after a restart: same first offset, more records -> another key.
    assert first != idempotency_key("b", "k", _polled(0, [10, 11, 12]))
    assert first != idempotency_key("b", "other", _polled(0, [10, 11]))
    assert first != idempotency_key("b", "k", _polled(1, [10, 11]))


def test_a_batched_send_path_quotes_the_object_key_every_time() -> None:
    shape = shape_for(parse(BATCHED).bindings[0])
    records = _polled(0, [1])
    for key in ["a/b", "a/b", "b64:/w==", "a/b"]:  # the second "a/b" is remembered
        assert shape.request(key, records).path == f"Clicks/{quote(key, safe='')}/on_clicks/send"


def test_idempotency_key_is_the_same_across_versions() -> None:
    # A send resent by a newer version after an upgrade must carry the key Restate already
    # has: one source partition (counted without a per-record loop) and several.
    one = [PolledRecord("t", 0, o, None, b"k", b"v", ()) for o in (10, 11, 13)]
    assert idempotency_key("b", "k", one) == "rs-batch-948220b6c4c7f77aa7ebca6d1a671d0a"
    mixed = [
        PolledRecord(topic, partition, offset, None, b"k", b"v", ())
        for topic, partition, offset in [("t", 1, 5), ("u", 0, 7), ("t", 0, 9), ("t", 1, 6)]
    ]
    assert idempotency_key("b", "k", mixed) == "rs-batch-353626f0c623d6e25f30810ee865fbe0"


def test_batch_field_is_read() -> None:
    (binding,) = parse(BATCHED).bindings
    assert binding.batch == BatchSpec(max_records=500, max_wait=timedelta(milliseconds=50))


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("{max_records: 0, max_wait: 50ms}", "8:26: bindings[0].batch.max_records: expected an"),
        (
            "{max_records: 200000}",
            "8:26: bindings[0].batch.max_records: expected an integer from 1 to 100000 "
            "(records per batch); got 200000",
        ),
        (
            "{max_wait: 5m}",
            "8:23: bindings[0].batch.max_wait: expected a duration with a unit, at most 60s, "
            "like 50ms; got '5m'",
        ),
        ("{max_wait: 50}", "8:23: bindings[0].batch.max_wait: expected a duration"),
        ("{size: 5}", "8:13: bindings[0].batch.size: unknown key 'size'"),
    ],
)
def test_batch_limits_are_checked_with_file_and_line(batch: str, expected: str) -> None:
    text = BATCHED.replace("{max_records: 500, max_wait: 50ms}", batch)
    with pytest.raises(BindingsError) as raised:
        parse(text)
    assert f"conf/bindings.yaml:{expected}" in str(raised.value)


def test_batch_with_dedupe_or_subscription_options_is_refused() -> None:
    text = BATCHED + "    dedupe: true\n    options: {fetch.max.bytes: '1'}\n"
    with pytest.raises(BindingsError) as raised:
        parse(text)
    message = str(raised.value)
    assert "bindings[0].dedupe: dedupe is not available on a batched binding" in message
    assert "bindings[0].options: a batched binding has no Restate subscription" in message


clicks = restate.VirtualObject("Clicks")


@clicks.handler()
async def on_clicks(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
    return None


@clicks.handler()
async def on_click(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    return None


@clicks.handler(kind="shared")
async def peek(ctx: restate.ObjectSharedContext, events: list[KafkaEvent[Any]]) -> None:
    return None


def test_app_check_wants_an_exclusive_object_handler_taking_a_list() -> None:
    check_against_app(parse(BATCHED), [clicks])  # fine
    for handler, message in (
        ("on_click", "batch needs 'Clicks/on_click' to take `events: list[KafkaEvent[T]]`"),
        ("peek", "batch needs an exclusive virtual object handler; 'Clicks/peek' is shared"),
    ):
        spec = parse(BATCHED.replace("Clicks/on_clicks", f"Clicks/{handler}"))
        with pytest.raises(BindingsError) as raised:
            check_against_app(spec, [clicks])
        assert f"conf/bindings.yaml:8:12: bindings[0].batch: {message}" in str(raised.value)


def test_plan_creates_no_subscription_and_removes_an_unbatched_one() -> None:
    spec = parse(BATCHED)
    group = spec.bindings[0].consumer_group
    empty = LiveState({}, [], [], {}, set())
    assert not [c for c in compute_plan(spec, empty).changes if isinstance(c, CreateSubscription)]
    old = Subscription(
        "sub_1", "kafka://local/clicks", "service://Clicks/on_clicks", {"group.id": group}
    )
    live = LiveState({}, [old], [], {}, {"Clicks/on_clicks"})
    changes = compute_plan(spec, live).changes
    deletes = [c for c in changes if isinstance(c, DeleteSubscription)]
    assert [d.id for d in deletes] == ["sub_1"]
    assert not [c for c in changes if isinstance(c, CreateSubscription)]


def test_encoded_batch_is_the_json_it_documents() -> None:
    records = [
        WireRecord('t"\\ü', 3, 9, 5, b"k", b"\x00v", (("n\n", b"x"), ("e", None))),
        WireRecord("t", 0, 0, None, None, None),
    ]
    doc = json.loads(encode_batch(records))
    assert doc == {
        "v": 2,
        "r": [
            ["aw==", [[0, 3, 9, 5, [["n\n", "eA=="], ["e", None]], 2, "AHY="]]],
            [None, [[1, 0, 0, None, None, 0, None]]],
        ],
        "t": ['t"\\ü', "t"],
        "at": [],
    }  # fmt: skip
    assert decode_batch(encode_batch(records)) == records


# --- per: partition ------------------------------------------------------------------------------


def test_per_partition_is_read_and_other_values_are_refused_with_the_choices() -> None:
    (binding,) = parse(
        BATCHED.replace("max_wait: 50ms}", "max_wait: 50ms, per: partition}")
    ).bindings
    assert binding.batch is not None and binding.batch.per == "partition"
    assert parse(BATCHED).bindings[0].batch.per == "key"
    with pytest.raises(BindingsError) as raised:
        parse(BATCHED.replace("max_wait: 50ms}", "max_wait: 50ms, per: topic}"))
    assert 'bindings[0].batch.per: expected "key" or "partition"' in str(raised.value)


def test_objects_are_keys_or_source_partitions() -> None:
    assert batch_object_key("key", "clicks", 3, b"user-1") == "user-1"
    assert batch_object_key("key", "clicks", 3, b"\xff") == object_key_for(b"\xff")
    assert batch_object_key("partition", "clicks", 3, b"user-1") == "clicks/3"
    assert batch_object_key("partition", "clicks", 3, None) == "clicks/3"


async def test_a_partition_object_sees_each_records_own_key_and_drops_redeliveries() -> None:
    obj = restate.VirtualObject("PerPartition")
    seen: list[tuple[str | None, int, Any]] = []

    @obj.handler()
    async def on_clicks(
        ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, int]]]
    ) -> None:
        seen.extend((e.key, e.offset, e.value) for e in events)

    text = BATCHED.replace("Clicks/on_clicks", "PerPartition/on_clicks").replace(
        "max_wait: 50ms}", "max_wait: 50ms, per: partition}"
    )
    text += "worker: {app: 'app:app'}\n"
    bind([obj], parse(text), {"local": MemoryPublisher()})
    ctx = MemoryContext("clicks/0", invocation_id="inv_1")
    first = [
        WireRecord("clicks", 0, 10, None, b"user-1", b'{"n": 1}'),
        WireRecord("clicks", 0, 11, None, b"\xff", b'{"n": 2}'),
        WireRecord("clicks", 0, 12, None, None, b'{"n": 3}'),
    ]
    await invoke(obj, "on_clicks", ctx, encode_batch(first))
    # A redelivery overlapping the first send: only offset 13 is new.
    await invoke(obj, "on_clicks", ctx, encode_batch([*first[1:], first[0]._replace(offset=13)]))
    assert seen == [
        ("user-1", 10, {"n": 1}),
        (object_key_for(b"\xff"), 11, {"n": 2}),
        ("", 12, {"n": 3}),
        ("user-1", 13, {"n": 1}),
    ]
    assert ctx.state[high_water_state("clicks")] == {"clicks/0": 13}


async def test_a_key_object_keeps_each_source_partitions_high_water_and_timestamps() -> None:
    obj = restate.VirtualObject("PerKey")
    seen: list[tuple[int, int, datetime | None]] = []

    @obj.handler()
    async def on_clicks(ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None:
        seen.extend((e.partition, e.offset, e.coordinates.timestamp) for e in events)

    text = BATCHED.replace("Clicks/on_clicks", "PerKey/on_clicks")
    text += "worker: {app: 'app:app'}\n"
    bind([obj], parse(text), {"local": MemoryPublisher()})
    ctx = MemoryContext("user-1", invocation_id="inv_1")
    ms = 1_700_000_000_123
    first = [
        WireRecord("clicks", 0, 10, ms, b"user-1", b"1"),
        WireRecord("clicks", 1, 4, ms, b"user-1", b"2"),
        WireRecord("clicks", 0, 11, ms + 1, b"user-1", b"3"),
        WireRecord("clicks", 1, 5, None, b"user-1", b"4"),
    ]
    await invoke(obj, "on_clicks", ctx, encode_batch(first))
    at = datetime.fromtimestamp(ms / 1000, UTC)
    assert seen == [
        (0, 10, at),
        (1, 4, at),
        (0, 11, at + timedelta(milliseconds=1)),
        (1, 5, None),
    ]
    assert ctx.state[high_water_state("clicks")] == {"clicks/0": 11, "clicks/1": 5}
    # Redelivered with one new record per partition: only those are passed on.
    seen.clear()
    again = [*first, first[0]._replace(offset=12), first[1]._replace(offset=6)]
    await invoke(obj, "on_clicks", ctx, encode_batch(again))
    assert [(p, o) for p, o, _ in seen] == [(0, 12), (1, 6)]
    assert ctx.state[high_water_state("clicks")] == {"clicks/0": 12, "clicks/1": 6}

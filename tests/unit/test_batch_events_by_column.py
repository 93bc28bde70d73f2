"""A batch whose values all came parsed and pass as they are gets its events built by column
(`_events_by_column`); they equal, field for field, what the record-by-record loop builds;
a batch with a CloudEvents envelope, a value of another type or a value that was not inline
goes record by record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import restate

from restate_stream.batch import handler as batch_handler
from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import KafkaEvent
from restate_stream.testing import MemoryContext, MemoryPublisher, invoke
from tests.unit.test_batch_wire_v2 import spec

MS = 1_700_000_000_123
ENVELOPE = (
    b'{"specversion": "1.0", "id": "e-1", "source": "s", "type": "t.created", "data": {"n": 9}}'
)


def _records(values: list[bytes]) -> list[WireRecord]:
    keys = [b"a", b"b", b"\xff", None]
    return [
        WireRecord("t", i % 2, 10 + i, MS + i, keys[i % len(keys)], value)
        for i, value in enumerate(values)
    ]


def _seen(events: list[KafkaEvent[Any]]) -> list[tuple[Any, ...]]:
    return [
        (e.value, e.key, e.raw, e.headers, e.topic, e.partition, e.offset, e.timestamp,
         e.event_id, e.event_type)
        for e in events
    ]  # fmt: skip


def _calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """A 1 for each call of the batch handler module's function `name` from now on."""
    function = getattr(batch_handler, name)
    calls: list[int] = []

    def counted(*args: Any) -> Any:
        calls.append(1)
        return function(*args)

    monkeypatch.setattr(batch_handler, name, counted)
    return calls


async def _run(
    name: str, per: str, values: list[bytes], typed: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """The events seen with the column path allowed, then with it refused; and how many
    batches took the column path."""
    taken = _calls(monkeypatch, "_events_by_column")
    seen: list[list[tuple[Any, ...]]] = []
    obj = restate.VirtualObject(name)

    async def take_dicts(
        ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]
    ) -> None:
        seen.append(_seen(events))

    async def take_any(ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None:
        seen.append(_seen(events))

    obj.handler(name="take")(take_dicts if typed else take_any)

    bind([obj], spec(name, per=per), {"local": MemoryPublisher()})
    body = encode_batch(_records(values), json_values=True)
    key = "a" if per == "key" else "t/0"
    await invoke(obj, "take", MemoryContext(key, invocation_id="inv_1"), body)
    monkeypatch.setattr(batch_handler, "_all_unconverted", lambda *_: False)
    await invoke(obj, "take", MemoryContext(key, invocation_id="inv_2"), body)
    return seen[0], seen[1], len(taken)


PLAIN = [b'{"n": %d}' % i for i in range(30)]
CASES = {
    "dicts, any type, per key": ("key", PLAIN, False, 1),
    "dicts, any type, per partition": ("partition", PLAIN, False, 1),
    "dicts, typed dict, per partition": ("partition", PLAIN, True, 1),
    "mixed types, any type": ("key", [*PLAIN[:5], b"[1, 2]", b'"s"', b"null", b"3.5"], False, 0),
    "an envelope": ("key", [*PLAIN[:20], ENVELOPE], False, 0),
    "not all inline": ("key", [*PLAIN[:20], b"not json"], False, 0),
    "no dicts": ("partition", [b"[%d]" % i for i in range(20)], False, 1),
}


@pytest.mark.parametrize(("per", "values", "typed", "by_column"), CASES.values(), ids=CASES.keys())
async def test_events_by_column_equal_the_record_by_record_ones(
    per: str, values: list[bytes], typed: bool, by_column: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"ByColumn{abs(hash((per, typed, len(values), values[-1]))) % 10**8}"
    with_columns, record_by_record, taken = await _run(name, per, values, typed, monkeypatch)
    assert taken == by_column
    assert with_columns == record_by_record
    assert len(with_columns) == len(values) - (values[-1] == b"not json")


@pytest.mark.parametrize("per", ["key", "partition"])
async def test_events_of_one_sources_columns_equal_the_record_by_record_ones(
    per: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body of one partition past the high-water: its events come from the columns
    (`_events_of_columns`), their raw bytes and coordinates read only when asked, equal field
    for field to the record-by-record loop's, and `dataclasses.replace` works on them."""
    taken = _calls(monkeypatch, "_events_of_columns")
    seen: list[list[tuple[Any, ...]]] = []
    lazy: list[bool] = []
    replaced: list[KafkaEvent[Any]] = []
    obj = restate.VirtualObject(f"OfColumns{per}")

    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None:
        lazy.append("raw" in events[0].__dict__ or "coordinates" in events[0].__dict__)
        seen.append(_seen(events))
        replaced.append(dataclasses.replace(events[3], value={"n": -1}))

    obj.handler(name="take")(take)
    bind([obj], spec(obj.name, per=per), {"local": MemoryPublisher()})
    keys = [b"a", b"b", b"\xff", None]
    records = [
        WireRecord("t", 3, 10 + i, MS + i, keys[i % len(keys)] if per == "partition" else b"a", v)
        for i, v in enumerate(PLAIN)
    ]
    body = encode_batch(records, json_values=True)
    key = "a" if per == "key" else "t/3"
    await invoke(obj, "take", MemoryContext(key, invocation_id="inv_1"), body)
    assert taken == [1] and lazy == [False]
    monkeypatch.setattr(batch_handler, "_values_unconverted", lambda *_: False)
    monkeypatch.setattr(batch_handler, "_all_unconverted", lambda *_: False)
    await invoke(obj, "take", MemoryContext(key, invocation_id="inv_2"), body)
    assert taken == [1]  # the second went record by record
    assert seen[0] == seen[1] and len(seen[0]) == len(PLAIN)
    assert [e[2] for e in seen[0]] == PLAIN  # raw bytes, exact
    assert replaced[0] == replaced[1] and replaced[0].raw == PLAIN[3]
    assert replaced[0].offset == 13 and replaced[0].value == {"n": -1}

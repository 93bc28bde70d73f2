"""A batched handler of values (`values: list[T]`): it gets the records' values in order, as
an events handler gets their events; a body of one partition past the high-water, its values
parsed as they pass, reaches it without a record or an event built (built only when a
failure asks); everything else takes the record-by-record way and gives the same values."""

from __future__ import annotations

from typing import Any

import pytest
import restate
from pydantic import BaseModel

from restate_stream.batch import handler, wire
from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.bindings import BindingsError, check_against_app
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.failures import RecordError, RejectedRecords
from restate_stream.runtime.high_water import high_water_state
from restate_stream.testing import MemoryContext, MemoryPublisher, invoke
from tests.unit.test_batch_wire_v2 import spec

MS = 1_700_000_000_123


class Item(BaseModel):
    n: int


def _records(values: list[bytes], first: int = 10, partition: int = 0) -> list[WireRecord]:
    return [
        WireRecord("t", partition, first + i, MS + i, b"k", value) for i, value in enumerate(values)
    ]


def _plain(count: int, first: int = 0) -> list[bytes]:
    return [b'{"n": %d}' % i for i in range(first, first + count)]


class _Built:
    """Counts the batches whose records or events were built from the body's columns."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        build_records = wire.Columns.records
        build_events = handler._events_of_columns

        def counted_records(columns: wire.Columns) -> list[WireRecord]:
            self.count += 1
            return build_records(columns)

        def counted_events(columns: wire.Columns, *args: Any) -> list[KafkaEvent[Any]]:
            self.count += 1
            return build_events(columns, *args)

        monkeypatch.setattr(wire.Columns, "records", counted_records)
        monkeypatch.setattr(handler, "_events_of_columns", counted_events)


def _object(name: str, fn: Any, publisher: MemoryPublisher, per: str = "key") -> Any:
    obj = restate.VirtualObject(name)
    obj.handler(name="take")(fn)
    bind([obj], spec(name, per=per), {"local": publisher})
    return obj


async def test_values_come_in_order_without_a_record_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = _Built(monkeypatch)
    seen: list[list[dict[str, int]]] = []

    async def take(ctx: restate.ObjectContext, values: list[dict[str, int]]) -> None:
        seen.append(values)

    obj = _object("ValuesPlain", take, MemoryPublisher())
    ctx = MemoryContext("k", invocation_id="inv_1")
    body = encode_batch(_records(_plain(30)), json_values=True)
    assert body.startswith(b'{"v":4')  # the body the fast way reads
    await invoke(obj, "take", ctx, body)
    assert seen == [[{"n": i} for i in range(30)]]
    assert built.count == 0
    assert ctx.state[high_water_state("b")] == {"t/0": 39}
    # The same body again (a redelivery): nothing is passed on, the high-water stays.
    await invoke(obj, "take", ctx, body)
    assert len(seen) == 1 and ctx.state[high_water_state("b")] == {"t/0": 39}
    # Overlapping the first: only the new records' values, by the record-by-record way.
    overlap = encode_batch(_records(_plain(30, first=20), first=30), json_values=True)
    await invoke(obj, "take", ctx, overlap)
    assert seen[1] == [{"n": i} for i in range(30, 50)]  # offsets 40-59
    assert ctx.state[high_water_state("b")] == {"t/0": 59}


def _takers(events_seen: list[Item], values_seen: list[Item]) -> tuple[Any, Any]:
    async def take_events(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
        events_seen.extend(e.value for e in events)

    async def take_values(ctx: restate.ObjectContext, values: list[Item]) -> None:
        values_seen.extend(values)

    return take_events, take_values


async def test_values_equal_an_events_handlers_values_whatever_the_body() -> None:
    """Bodies the fast way does not take (two partitions, a poison value, too few records
    for columns, models to convert) give a values handler the values an events handler
    sees, and dead-letter the same records."""
    bodies = {
        "TwoPartitions": [*_records(_plain(15)), *_records(_plain(15), partition=1)],
        "Poison": _records([*_plain(14), b'{"n": ', *_plain(15)]),
        "Few": _records(_plain(3)),
    }
    for name, records in bodies.items():
        body = encode_batch(records, json_values=True)
        events_seen: list[Item] = []
        values_seen: list[Item] = []
        take_events, take_values = _takers(events_seen, values_seen)
        letters = []
        for fn in (take_events, take_values):
            publisher = MemoryPublisher()
            obj = _object(f"Same{name}{fn.__name__}", fn, publisher)
            await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
            letters.append([(m.value["source"]["offset"], m.value["error"]["type"])
                            for m in publisher.sent])  # fmt: skip
        assert values_seen == events_seen and len(values_seen) >= 3, name
        assert all(isinstance(v, Item) for v in values_seen), name
        assert letters[0] == letters[1], name
        if name == "Poison":
            assert letters[1] == [(24, "DecodeError")]


async def test_a_failed_batch_of_values_is_dead_lettered_byte_for_byte_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = _Built(monkeypatch)

    async def take(ctx: restate.ObjectContext, values: list[dict[str, Any]]) -> None:
        values.sort(key=lambda v: -v["n"])  # its own list: the records keep their places
        values[0]["mutated"] = True  # what a letter carries is the record, not this
        raise restate.TerminalError("no")

    publisher = MemoryPublisher()
    obj = _object("ValuesFail", take, publisher)
    raw = [b'{"n": %d,  "a": "\\u00e9"}' % i for i in range(20)]
    ctx = MemoryContext("k", invocation_id="inv_1")
    await invoke(obj, "take", ctx, encode_batch(_records(raw), json_values=True))
    assert built.count == 2  # the letters asked for the events, their coordinates the records
    letters = [(m.value["source"]["offset"], m.value["value"]) for m in publisher.sent]
    assert letters == [(10 + i, value.decode()) for i, value in enumerate(raw)]
    assert {m.value["error"]["type"] for m in publisher.sent} == {"TerminalError"}
    assert ctx.state[high_water_state("b")] == {"t/0": 29}  # the key moves on


async def test_a_rejected_value_is_dead_lettered_alone() -> None:
    applied: list[int] = []

    async def take(ctx: restate.ObjectContext, values: list[dict[str, int]]) -> None:
        bad = [v for v in values if v["n"] % 7 == 3]
        applied.extend(v["n"] for v in values if v["n"] % 7 != 3)
        values.reverse()  # the rejection is told by the value itself, not its place
        raise RejectedRecords([(v, RecordError("Odd", "n is 3 mod 7")) for v in bad])

    publisher = MemoryPublisher()
    obj = _object("ValuesReject", take, publisher)
    await invoke(
        obj, "take", MemoryContext("k", invocation_id="inv_1"),
        encode_batch(_records(_plain(20)), json_values=True),
    )  # fmt: skip
    letters = [(m.value["source"]["offset"], m.value["error"]["type"]) for m in publisher.sent]
    assert letters == [(13, "Odd"), (20, "Odd"), (27, "Odd")]
    assert len(applied) == 17


async def test_per_partition_values_come_in_read_order_across_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = _Built(monkeypatch)
    seen: list[Any] = []

    async def take(ctx: restate.ObjectContext, values: list[Any]) -> None:
        seen.extend(values)

    obj = _object("ValuesPartition", take, MemoryPublisher(), per="partition")
    records = [r._replace(key=b"k%d" % (r.offset % 3)) for r in _records(_plain(20))]
    await invoke(
        obj, "take", MemoryContext("t/0", invocation_id="inv_1"),
        encode_batch(records, json_values=True),
    )  # fmt: skip
    assert seen == [{"n": i} for i in range(20)] and built.count == 0


def test_a_batched_handler_takes_a_list_of_events_or_of_values() -> None:
    async def values(ctx: restate.ObjectContext, values: list[Item]) -> None: ...

    async def bare(ctx: restate.ObjectContext, values: list) -> None:  # type: ignore[type-arg]
        ...

    async def single(ctx: restate.ObjectContext, value: Item) -> None: ...

    for fn, problem in ((values, False), (bare, True), (single, True)):
        obj = restate.VirtualObject(f"Shape{fn.__name__}")
        obj.handler(name="take")(fn)
        if not problem:
            check_against_app(spec(obj.name), [obj])
            continue
        with pytest.raises(BindingsError) as raised:
            check_against_app(spec(obj.name), [obj])
        assert (
            f"batch needs '{obj.name}/take' to take `events: list[KafkaEvent[T]]` or "
            "`values: list[T]` as its input"
        ) in str(raised.value)

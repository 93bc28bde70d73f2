"""Tombstones (null values): the value None for a handler whose type admits it, a dead letter
naming the fix otherwise; unbatched (an empty body, as Restate sends a null value) and
batched (null in the batch body)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Optional

import pytest
import restate
from pydantic import BaseModel

from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.runtime.bound import TOMBSTONE_ERROR, admits_none, bind, without_none
from restate_stream.runtime.event import KafkaEvent
from restate_stream.testing import (
    MemoryContext,
    MemoryPublisher,
    bindings_yaml,
    invoke,
    kafka_headers,
)


class Item(BaseModel):
    n: int


def spec(**binding: Any) -> BindingsFile:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        worker={"app": "app:app"},
        bindings=[{"name": "b", "topic": "t", "dead_letter": "t.dlq", **binding}],
    )
    return parse_bindings(text, Path("bindings.yaml"), {})


def ctx() -> MemoryContext:
    return MemoryContext("k", headers=kafka_headers("t", partition=0, offset=3, key="k"))


@pytest.mark.parametrize(
    ("value_type", "admits"),
    [
        (Item, False),
        (int, False),
        (Item | None, True),
        (Optional[Item], True),  # noqa: UP045 - the spelling users may write
        (Any, True),
        (None, True),
        (int | str, False),
    ],
)
def test_admits_none(value_type: Any, admits: bool) -> None:
    assert admits_none(value_type) is admits


def unbatched(nullable: bool) -> tuple[restate.VirtualObject, list[Any]]:
    obj = restate.VirtualObject("Del")
    seen: list[Any] = []
    if nullable:

        @obj.handler()
        async def take(ctx: restate.ObjectContext, event: KafkaEvent[Item | None]) -> None:
            seen.append(event.value)
    else:

        @obj.handler(name="take")
        async def take_strict(ctx: restate.ObjectContext, event: KafkaEvent[Item]) -> None:
            seen.append(event.value)

    return obj, seen


async def test_an_empty_json_body_is_a_tombstone_given_as_none() -> None:
    obj, seen = unbatched(nullable=True)
    publisher = MemoryPublisher()
    bind([obj], spec(handler="Del/take"), {"local": publisher})
    await invoke(obj, "take", ctx(), b"")
    await invoke(obj, "take", ctx(), b'{"n": 2}')
    assert seen == [None, Item(n=2)]
    assert publisher.sent == []


async def test_a_tombstone_the_type_does_not_admit_is_a_dead_letter_naming_the_fix() -> None:
    obj, seen = unbatched(nullable=False)
    publisher = MemoryPublisher()
    bind([obj], spec(handler="Del/take"), {"local": publisher})
    await invoke(obj, "take", ctx(), b"")
    assert seen == []
    [letter] = publisher.sent
    assert letter.topic == "t.dlq"
    assert letter.value["error"]["type"] == TOMBSTONE_ERROR
    assert "declare KafkaEvent[T | None]" in letter.value["error"]["message"]


async def test_an_empty_body_in_format_bytes_is_the_empty_value() -> None:
    obj = restate.VirtualObject("Raw")
    seen: list[Any] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, event: KafkaEvent[bytes]) -> None:
        seen.append(event.value)

    bind([obj], spec(handler="Raw/take", format="bytes"), {"local": MemoryPublisher()})
    await invoke(obj, "take", ctx(), b"")
    assert seen == [b""]


@pytest.mark.parametrize("nullable", [True, False])
async def test_batched_null_values_are_none_or_dead_letters(nullable: bool) -> None:
    obj = restate.VirtualObject("BDel")
    seen: list[Any] = []
    if nullable:

        @obj.handler()
        async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[Item | None]]) -> None:
            seen.extend(e.value for e in events)
    else:

        @obj.handler(name="take")
        async def take_strict(ctx: restate.ObjectContext, events: list[KafkaEvent[Item]]) -> None:
            seen.extend(e.value for e in events)

    publisher = MemoryPublisher()
    binding = {"handler": "BDel/take", "batch": {"max_records": 10, "max_wait": "10ms"}}
    bind([obj], spec(**binding), {"local": publisher})
    body = encode_batch(
        [
            WireRecord("t", 0, 1, None, b"k", b'{"n": 1}'),
            WireRecord("t", 0, 2, None, b"k", None),
            WireRecord("t", 0, 3, None, b"k", b'{"n": 3}'),
        ]
    )
    await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), body)
    if nullable:
        assert seen == [Item(n=1), None, Item(n=3)]
        assert publisher.sent == []
    else:
        assert seen == [Item(n=1), Item(n=3)]
        [letter] = publisher.sent
        assert letter.value["error"]["type"] == TOMBSTONE_ERROR
        assert letter.value["source"]["offset"] == 2


def test_without_none_keeps_every_other_member_of_the_union() -> None:
    assert without_none(int | None) is int
    assert without_none(int | str | None) == (int | str)
    assert without_none(typing.Optional[int | str]) == (int | str)  # noqa: UP045
    assert without_none(int | str) == (int | str)
    assert without_none(dict[str, int]) == dict[str, int]

"""Engine-free checks of the event path: coordinates, formats, envelopes, keys, dead letters."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from restate_stream.bindings import Binding
from restate_stream.runtime.bound import input_type_of
from restate_stream.runtime.dead_letter import DeadLetter, parse_record
from restate_stream.runtime.event import InvalidKeyError, KafkaCoordinates, KafkaEvent, check_key
from restate_stream.runtime.formats import (
    DecodeError,
    EncodeError,
    JsonCodec,
    StringCodec,
    cloudevent,
    unwrap_cloudevent,
)


@dataclass
class Point:
    x: int
    y: int


class Model(BaseModel):
    name: str
    size: int


HEADERS = {
    "kafka.topic": "orders",
    "kafka.partition": "3",
    "kafka.offset": "42",
    "kafka.timestamp": "1795609637494",
    "kafka.key": base64.b64encode(b"k-1").decode(),
    "restate.subscription.id": "sub_1",
}


def test_coordinates_from_restate_headers() -> None:
    c = KafkaCoordinates.from_headers(HEADERS)
    assert (c.topic, c.partition, c.offset, c.key, c.subscription_id) == (
        "orders",
        3,
        42,
        b"k-1",
        "sub_1",
    )
    assert c.timestamp == datetime.fromtimestamp(1795609637.494, tz=UTC)
    assert c.describe() == "orders[3]@42"


def test_coordinates_tolerate_missing_or_bad_headers() -> None:
    c = KafkaCoordinates.from_headers({"kafka.offset": "x", "kafka.key": "%%%"})
    assert (c.topic, c.partition, c.offset, c.timestamp, c.key) == ("", -1, -1, None, None)


def test_json_decodes_into_declared_types() -> None:
    assert JsonCodec(Point).decode(b'{"x": 1, "y": 2}') == Point(1, 2)
    assert JsonCodec(Model).decode(b'{"name": "a", "size": 3}') == Model(name="a", size=3)
    assert JsonCodec(dict).decode(b'{"a": 1}') == {"a": 1}
    assert JsonCodec().decode(b"[1, 2]") == [1, 2]


@pytest.mark.parametrize(
    ("codec", "data", "message"),
    [
        (JsonCodec(), b"{nope", "invalid JSON"),
        (JsonCodec(Point), b'{"x": 1}', "does not match Point"),
        (JsonCodec(Point), b"[1, 2]", "expected a JSON object for Point"),
        (JsonCodec(Model), b'{"name": "a", "size": "big"}', "does not match Model"),
        (JsonCodec(dict), b"[1]", "expected a JSON dict, got list"),
        (StringCodec(), b"\xff\xfe", "not UTF-8"),
    ],
)
def test_decode_errors_say_what_was_wrong(codec: Any, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        codec.decode(data)


def test_encode_errors() -> None:
    with pytest.raises(EncodeError, match="not JSON-serialisable"):
        JsonCodec().encode({"when": object()})
    with pytest.raises(EncodeError, match="expected str"):
        StringCodec().encode(b"bytes")


def test_cloudevents_envelope_round_trip() -> None:
    data = json.loads(cloudevent("id-1", "t", "src", "2026-01-01T00:00:00Z", Point(1, 2)))
    assert data["specversion"] == "1.0" and data["datacontenttype"] == "application/json"
    assert unwrap_cloudevent(data) == ({"x": 1, "y": 2}, "id-1", "t")
    assert unwrap_cloudevent({"id": 1, "x": 2}) == ({"id": 1, "x": 2}, None, None)


def test_keys_must_be_utf8_text() -> None:
    assert check_key("ключ") == "ключ".encode()
    assert check_key(None) is None
    with pytest.raises(InvalidKeyError, match=r"key must be a string \(UTF-8 text\), got bytes"):
        check_key(b"\xff")
    with pytest.raises(InvalidKeyError, match="got a number"):
        check_key(7)
    with pytest.raises(ValueError, match="not valid UTF-8"):
        check_key("\udcff")


def test_handler_input_type_from_annotations() -> None:
    async def with_event(ctx: Any, event: KafkaEvent[Point]) -> None: ...
    async def with_value(ctx: Any, value: Model) -> None: ...
    async def bare_event(ctx: Any, event: KafkaEvent) -> None: ...  # type: ignore[type-arg]

    assert input_type_of(with_event) == (Point, True)
    assert input_type_of(with_value) == (Model, False)
    assert input_type_of(bare_event) == (Any, True)


def test_dead_letter_record_keeps_the_original_and_the_reason() -> None:
    binding = Binding(name="b", topic="orders", cluster="c", service="S", handler="h")
    coords = KafkaCoordinates.from_headers(HEADERS)
    text = DeadLetter.of(binding.name, coords, b"{bad", "DecodeError", "invalid JSON", 1).to_json()
    assert text["value"] == "{bad" and text["value_base64"] is None
    assert text["source"] == {
        "topic": "orders",
        "partition": 3,
        "offset": 42,
        "timestamp": coords.timestamp.isoformat() if coords.timestamp else None,
        "subscription_id": "sub_1",
    }
    assert (text["key"], text["binding"], text["attempts"]) == ("k-1", "b", 1)
    assert text["error"] == {"type": "DecodeError", "message": "invalid JSON"}
    binary = DeadLetter.of(binding.name, coords, b"\xff\x00", "DecodeError", "m", 2).to_json()
    assert binary["value"] is None and base64.b64decode(binary["value_base64"]) == b"\xff\x00"
    envelope = cloudevent("id", "restate-stream.dead-letter", "s", "now", text)
    assert parse_record(envelope).to_json() == text


def test_input_type_when_ctx_has_no_annotation() -> None:
    async def untyped_ctx(ctx, value: Point) -> None: ...  # type: ignore[no-untyped-def]
    async def untyped_ctx_event(ctx, event: KafkaEvent[Model]) -> None: ...  # type: ignore[no-untyped-def]

    assert input_type_of(untyped_ctx) == (Point, False)
    assert input_type_of(untyped_ctx_event) == (Model, True)


def test_terminal_errors_are_found_through_wrapping_exceptions() -> None:
    import restate
    from restate.exceptions import SdkInternalBaseException

    from restate_stream.runtime.bound import causes

    terminal = restate.TerminalError("rejected")
    try:
        try:
            raise terminal
        except restate.TerminalError as exc:
            raise ValueError("wrapped") from exc
    except ValueError as wrapped:
        assert causes(wrapped) == (terminal, False)
    assert causes(RuntimeError("plain")) == (None, False)
    internal = RuntimeError("wraps a suspension")
    internal.__cause__ = SdkInternalBaseException("suspended")
    assert causes(internal) == (None, True)


def test_dataclass_field_types_are_checked() -> None:
    with pytest.raises(DecodeError, match="does not match Point"):
        JsonCodec(Point).decode(b'{"x": "lots", "y": 2}')

"""Engine-free details of bound handlers: the event a handler sees, Avro bindings and a Schema
Registry outage, the log lines an operator reads, and the codec each format gets."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import restate
from pydantic import BaseModel

from connectors.avro import AvroCodec
from connectors.schema_registry import SchemaRegistryClient
from restate_stream._util.ports import free_ports
from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.runtime import failures
from restate_stream.runtime.bound import (
    RecordBoundHandler,
    bind,
    input_type_of,
)
from restate_stream.runtime.dead_letter import DeadLetter, NotADeadLetterError, parse_record
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent
from restate_stream.runtime.formats import (
    BytesCodec,
    DecodeError,
    JsonCodec,
    StringCodec,
    cloudevent,
    codec_for,
    unwrap_cloudevent,
)
from restate_stream.testing import (
    MemoryContext,
    MemoryPublisher,
    SchemaRegistryStub,
    bindings_yaml,
    invoke,
    kafka_headers,
)

SCHEMA = Path(__file__).resolve().parents[1] / "integration" / "schemas" / "payment.avsc"
PAYMENT = {"id": 1, "amount_cents": 250, "currency": "EUR"}


def spec(*bindings: dict[str, Any], worker: bool = True) -> BindingsFile:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        worker={"app": "app:app"} if worker else None,
        bindings=bindings,
    )
    return parse_bindings(text, Path("bindings.yaml"), {})


def recorder() -> tuple[restate.VirtualObject, list[Any]]:
    obj = restate.VirtualObject("Rec")
    seen: list[Any] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, event: KafkaEvent[Any]) -> None:
        seen.append(event)

    return obj, seen


def ctx(offset: int = 5) -> MemoryContext:
    headers = kafka_headers(
        "t", partition=2, offset=offset, key="k-1", timestamp=datetime(2024, 5, 1, tzinfo=UTC)
    )
    return MemoryContext("k-1", headers=headers, invocation_id="inv_9")


async def test_the_handler_sees_value_key_coordinates_raw_bytes_and_event_id() -> None:
    obj, seen = recorder()
    bind([obj], spec({"name": "b", "topic": "t", "handler": "Rec/take"}), {})
    raw = cloudevent("e-1", "t.placed", "src", "2024-01-01T00:00:00Z", {"n": 1})
    await invoke(obj, "take", ctx(), raw)
    [event] = seen
    assert (event.value, event.key, event.raw) == ({"n": 1}, "k-1", raw)
    assert (event.event_id, event.event_type) == ("e-1", "t.placed")
    assert (event.topic, event.partition, event.offset) == ("t", 2, 5)
    assert event.timestamp == datetime(2024, 5, 1, tzinfo=UTC)


async def test_the_handler_receives_the_invocation_context() -> None:
    obj = restate.VirtualObject("Ctx")
    contexts: list[Any] = []

    @obj.handler()
    async def take(ctx: restate.ObjectContext, value: str) -> None:
        contexts.append(ctx)

    bind([obj], spec({"name": "b", "topic": "t", "handler": "Ctx/take", "format": "string"}), {})
    c = ctx()
    await invoke(obj, "take", c, "héllo".encode())
    assert contexts == [c]


def test_input_types_come_from_the_second_parameter() -> None:
    async def event_of(ctx: Any, event: KafkaEvent[int]) -> None: ...
    async def bare_event(ctx: Any, event: KafkaEvent) -> None:  # type: ignore[type-arg]
        ...

    async def value_of(ctx: Any, value: dict[str, int]) -> None: ...
    async def unannotated(ctx, value):  # type: ignore[no-untyped-def]
        ...

    async def no_input(ctx: Any) -> None: ...

    assert input_type_of(event_of) == (int, True)
    assert input_type_of(bare_event) == (Any, True)
    assert input_type_of(value_of) == (dict[str, int], False)
    assert input_type_of(unannotated) == (Any, False)
    assert input_type_of(no_input) == (Any, True)


def test_the_attempt_counts_forget_the_oldest_invocation_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failures, "_ATTEMPTS_REMEMBERED", 2)
    attempts = failures.Attempts()
    assert attempts.failed("a") == 1 and attempts.failed("b") == 1
    assert attempts.failed("a") == 2  # two remembered: "a" is still there, now the newest
    assert attempts.failed("c") == 1  # a third: the oldest ("b") is forgotten
    assert attempts.failed("a") == 3 and attempts.failed("b") == 1


def test_a_bound_handler_wants_the_event_unless_told_otherwise() -> None:
    [binding] = spec({"name": "b", "topic": "t", "handler": "Rec/take"}).bindings

    async def fn(ctx: Any, event: Any) -> None: ...

    handler = RecordBoundHandler(binding, fn, JsonCodec(), MemoryPublisher())
    assert handler.wants_event is True and handler.max_attempts is None


def test_bind_continues_past_a_binding_whose_service_is_not_served() -> None:
    obj, _ = recorder()
    both = spec(
        {"name": "gone", "topic": "t", "handler": "Gone/take"},
        {"name": "here", "topic": "t", "handler": "Rec/take"},
    )
    assert bind([obj], both, {}) == ["Rec/take"]


def test_without_a_worker_section_the_backstop_counts_one_process() -> None:
    obj, _ = recorder()
    binding = {"name": "b", "topic": "t", "handler": "Rec/take", "retry": {"max_attempts": 5}}
    bind([obj], spec(binding, worker=False), {})
    policy = obj.handlers["take"].invocation_retry_policy
    assert policy is not None and policy.max_attempts == 10


async def test_an_avro_binding_decodes_with_its_schema_and_dead_letters_garbage() -> None:
    obj, seen = recorder()
    publisher = MemoryPublisher()
    binding = {
        "name": "b",
        "topic": "t",
        "handler": "Rec/take",
        "format": "avro",
        "schema": SCHEMA,
        "dead_letter": "dlq",
    }
    bind([obj], spec(binding), {"local": publisher})
    await invoke(obj, "take", ctx(), AvroCodec(SCHEMA).encode(PAYMENT))
    assert [e.value for e in seen] == [PAYMENT]
    await invoke(obj, "take", ctx(6), b"\xff")
    assert publisher.sent[0].value["error"]["type"] == "DecodeError"


def confluent(schema_id: int) -> bytes:
    return AvroCodec(SCHEMA, wire="confluent", schema_id=schema_id).encode(PAYMENT)


def confluent_binding(registry: str) -> dict[str, Any]:
    return {
        "name": "b",
        "topic": "t",
        "handler": "Rec/take",
        "format": "avro",
        "avro_wire": "confluent",
        "schema": SCHEMA,
        "schema_registry": registry,
        "dead_letter": "dlq",
    }


async def test_a_registry_lookup_runs_off_the_event_loop_and_unknown_ids_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[str] = []
    original = SchemaRegistryClient.schema_by_id

    def schema_by_id(self: SchemaRegistryClient, schema_id: int) -> Any:
        lookups.append(threading.current_thread().name)
        return original(self, schema_id)

    monkeypatch.setattr(SchemaRegistryClient, "schema_by_id", schema_by_id)
    registry = SchemaRegistryStub({7: json.loads(SCHEMA.read_text())})  # knows id 7 only
    registry.start()
    try:
        obj, seen = recorder()
        publisher = MemoryPublisher()
        url = registry.url
        bind([obj], spec(confluent_binding(url)), {"local": publisher})
        await invoke(obj, "take", ctx(), confluent(7))
        assert [e.value for e in seen] == [PAYMENT] and publisher.sent == []
        assert lookups and threading.main_thread().name not in lookups  # not on the loop
        await invoke(obj, "take", ctx(6), confluent(99))
        [sent] = publisher.sent
        assert sent.value["error"]["type"] == "DecodeError"
        assert "unknown schema id 99" in sent.value["error"]["message"]
    finally:
        registry.stop()


async def test_a_registry_outage_is_retried_not_dead_lettered() -> None:
    obj, seen = recorder()
    publisher = MemoryPublisher()
    down = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    bind([obj], spec(confluent_binding(down)), {"local": publisher})
    for _ in range(3):
        with pytest.raises(Exception) as caught:
            await invoke(obj, "take", ctx(), confluent(7))
        assert not isinstance(caught.value, (DecodeError, restate.TerminalError))
    assert seen == [] and publisher.sent == []


async def test_duplicates_dead_letters_and_drops_are_logged_where_they_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    obj, _ = recorder()
    publisher = MemoryPublisher()
    bind(
        [obj],
        spec(
            {"name": "b", "topic": "t", "handler": "Rec/take", "dedupe": True, "dead_letter": "q"}
        ),
        {"local": publisher},
    )
    raw = cloudevent("e-1", "t.placed", "src", "2024-01-01T00:00:00Z", {"n": 1})
    c = ctx()
    with caplog.at_level(logging.INFO, logger="restate_stream.runtime.bound"):
        await invoke(obj, "take", c, raw)
        c.headers["kafka.offset"] = "6"  # published twice: the next record, the same id
        await invoke(obj, "take", c, raw)
        await invoke(obj, "take", ctx(8), b"{bad")
    messages = [r.getMessage() for r in caplog.records]
    assert "dropping duplicate event e-1 at t[2]@6" in messages
    [dead] = [m for m in messages if m.startswith("dead-lettered")]
    assert dead.startswith("dead-lettered (binding b, t[2]@8, invocation inv_9) to q[0]@0: ")
    assert ": DecodeError: invalid JSON" in dead


async def test_a_drop_without_dead_letter_topic_logs_type_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    obj, _ = recorder()
    bind([obj], spec({"name": "b", "topic": "t", "handler": "Rec/take"}), {})
    with caplog.at_level(logging.ERROR, logger="restate_stream.runtime.bound"):
        await invoke(obj, "take", ctx(3), b"{bad")
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("dropped record (binding b, t[2]@3, invocation inv_9): DecodeError: ")
    assert "invalid JSON" in message and message.endswith("; no dead_letter topic set")


def test_a_dead_letter_record_says_when_it_failed_in_utc_and_parses_back() -> None:
    [binding] = spec({"name": "b", "topic": "t", "handler": "Rec/take"}).bindings
    coords = KafkaCoordinates.from_headers(kafka_headers("t", offset=1, key="k"))
    letter = DeadLetter.of(binding.name, coords, b"v", "TerminalError", "no", 2)
    record = letter.to_json()
    assert datetime.fromisoformat(record["failed_at"]).utcoffset() is not None
    assert record["failed_at"].endswith("+00:00")
    envelope = cloudevent("id", "restate-stream.dead-letter", "s", "now", record)
    assert parse_record(envelope) == letter
    with pytest.raises(NotADeadLetterError, match="expected a JSON object, got list"):
        parse_record(cloudevent("id", "x", "s", "now", [1]))
    with pytest.raises(NotADeadLetterError, match="expected a JSON object, got str"):
        parse_record(b'"text"')


@dataclass
class Point:
    x: int


class Model(BaseModel):
    when: datetime


def test_each_format_gets_its_codec() -> None:
    json_codec = codec_for("json", Point)
    assert isinstance(json_codec, JsonCodec) and json_codec.decode(b'{"x": 1}') == Point(1)
    assert isinstance(codec_for("bytes"), BytesCodec)
    assert isinstance(codec_for("string"), StringCodec)
    plain = codec_for("avro", None, SCHEMA)
    assert plain.decode(AvroCodec(SCHEMA).encode(PAYMENT)) == PAYMENT
    with pytest.raises(DecodeError):  # the default wire is plain: a confluent header is garbage
        codec_for("avro", None, SCHEMA).decode(confluent(7) + b"\x00" * 8)
    wired = codec_for("avro", None, SCHEMA, "confluent")
    assert wired.decode(confluent(3)) == PAYMENT  # no registry: read with the binding's schema
    with pytest.raises(ValueError, match="format avro needs a schema file"):
        codec_for("avro")
    with pytest.raises(ValueError, match="unknown format 'xml': expected json, avro, bytes or"):
        codec_for("xml")


def test_json_values_and_envelopes() -> None:
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert json.loads(JsonCodec().encode(Model(when=when))) == {"when": "2024-05-01T12:00:00Z"}
    assert JsonCodec(Model).convert({"when": "2024-05-01T12:00:00Z"}) == Model(when=when)
    assert JsonCodec(Point).convert({"x": 2}) == Point(2)
    envelope = json.loads(cloudevent("id-1", "k", "src", "2024-01-01T00:00:00Z", {"a": 1}))
    assert envelope["source"] == "src" and envelope["time"] == "2024-01-01T00:00:00Z"
    assert envelope["id"] == "id-1" and envelope["type"] == "k" and envelope["data"] == {"a": 1}
    compact = cloudevent("i", "k", "s", "t", [1])
    assert b" " not in compact
    assert unwrap_cloudevent(json.loads(compact)) == ([1], "i", "k")

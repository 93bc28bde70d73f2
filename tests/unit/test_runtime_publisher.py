"""The durable publisher without engines: what a broker refusal becomes, keys, values, the
envelope, and the event id drawn from Restate's deterministic random."""

from __future__ import annotations

import json
from typing import Any

import pytest
import restate

from connectors.producer import Delivery, ProduceError
from restate_stream.runtime.formats import unwrap_cloudevent
from restate_stream.runtime.publisher import Publisher
from restate_stream.testing import MemoryContext, as_context


class Broker:
    """A producer that acks at increasing offsets, or fails as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.headers: list[Any] = []
        self.fail: ProduceError | None = None

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Any = None,
        partition: int | None = None,
    ) -> Delivery:
        if self.fail is not None:
            raise self.fail
        self.sent.append((topic, key, value))
        self.headers.append(list(headers or ()))
        return Delivery(topic, 0, len(self.sent) - 1, None)

    async def close(self) -> None:
        return None


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker()
    monkeypatch.setattr(Publisher, "_producer", lambda self: fake)
    return fake


async def test_a_publish_is_enveloped_with_the_deterministic_event_id(broker: Broker) -> None:
    ctx = MemoryContext()
    published = await Publisher({}).publish(as_context(ctx), "t", "k", {"a": 1})
    [(topic, key, value)] = broker.sent
    assert (topic, key, published.offset) == ("t", b"k", 0)
    data, event_id, kind = unwrap_cloudevent(json.loads(value or b""))
    assert data == {"a": 1} and kind == "t.published"
    assert event_id == published.event_id == "00000000-0000-0000-0000-000000000001"
    # The CloudEvents Kafka binding, structured mode: the header names the envelope.
    assert broker.headers == [[("content-type", b"application/cloudevents+json")]]


async def test_a_record_without_envelope_carries_no_cloudevents_header(broker: Broker) -> None:
    await Publisher({}).publish(as_context(MemoryContext()), "t", "k", {"a": 1}, envelope=False)
    assert broker.headers == [[]]


async def test_a_permanent_refusal_is_terminal_and_a_transient_one_is_retried(
    broker: Broker,
) -> None:
    ctx = as_context(MemoryContext())
    broker.fail = ProduceError("t", b"k", "Broker: Message size too large", retriable=False)
    with pytest.raises(restate.TerminalError, match="Message size too large"):
        await Publisher({}).publish(ctx, "t", "k", {"a": 1})
    broker.fail = ProduceError("t", b"k", "Local: Broker transport failure", retriable=True)
    with pytest.raises(ProduceError) as transient:  # raised in ctx.run: Restate retries it
        await Publisher({}).publish(ctx, "t", "k", {"a": 1})
    assert not isinstance(transient.value, restate.TerminalError)


async def test_dead_letters_retry_even_a_permanent_refusal(broker: Broker) -> None:
    broker.fail = ProduceError("dlq", b"k", "Broker: Message size too large", retriable=False)
    with pytest.raises(ProduceError):
        await Publisher({}).publish(
            as_context(MemoryContext()), "dlq", "k", {"a": 1}, retry_forever=True
        )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (7, {"a": 1}, "key must be a string"),
        ("\ud800", {"a": 1}, "is not valid UTF-8"),
        ("k", {1, 2}, "not JSON-serialisable"),
    ],
)
async def test_a_bad_key_or_value_is_terminal_before_anything_is_sent(
    broker: Broker, key: Any, value: Any, problem: str
) -> None:
    with pytest.raises(restate.TerminalError, match=problem):
        await Publisher({}).publish(as_context(MemoryContext()), "t", key, value)
    assert broker.sent == []

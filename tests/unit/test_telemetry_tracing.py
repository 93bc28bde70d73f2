"""Tracing without engines: a durable publish is a send span whose traceparent goes into the
CloudEvents envelope; an invocation span continues the envelope's trace and links Restate's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import restate
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from connectors.producer import Delivery
from restate_stream.bindings.loader import parse_bindings
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent
from restate_stream.runtime.formats import envelope_traceparent
from restate_stream.runtime.publisher import Publisher
from restate_stream.telemetry import tracing
from restate_stream.testing import BindingsKit, MemoryContext, as_context, bindings_yaml


def _traced(monkeypatch: pytest.MonkeyPatch, sampler: Sampler) -> Iterator[InMemorySpanExporter]:
    """An SDK tracer for this test only (the global provider can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "enabled", lambda: True)
    yield exporter
    provider.shutdown()


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    yield from _traced(monkeypatch, ALWAYS_ON)


@pytest.fixture
def sampled_out(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A head sampler that records no trace (as 99% of them with a 1% ratio)."""
    yield from _traced(monkeypatch, ParentBased(ALWAYS_OFF))


class Broker:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> Any:
        self.values.append(value)
        return Delivery(topic, 0, len(self.values) - 1, None)


async def test_a_publish_is_a_send_span_whose_traceparent_is_in_the_envelope(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker()
    monkeypatch.setattr(Publisher, "_producer", lambda self: broker)
    with tracing.tracer().start_as_current_span("handler A") as parent:
        await Publisher({}).publish(as_context(MemoryContext()), "orders", "k", {"a": 1})
    send, _handler_a = spans.get_finished_spans()
    assert (send.name, send.kind) == ("send orders", SpanKind.PRODUCER)
    assert send.parent is not None and send.parent.span_id == parent.get_span_context().span_id
    traceparent = envelope_traceparent(json.loads(broker.values[0]))
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (send.context.trace_id, send.context.span_id)


async def test_without_a_tracer_the_envelope_has_no_traceparent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker()
    monkeypatch.setattr(Publisher, "_producer", lambda self: broker)
    monkeypatch.setattr(tracing, "enabled", lambda: False)
    await Publisher({}).publish(as_context(MemoryContext()), "orders", "k", {"a": 1})
    envelope = json.loads(broker.values[0])
    assert envelope["data"] == {"a": 1} and "traceparent" not in envelope


def test_an_invocation_continues_the_envelopes_trace_and_links_restates(
    spans: InMemorySpanExporter,
) -> None:
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    restate = "00-11111111111111111111111111111111-2222222222222222-01"
    coords = KafkaCoordinates("orders", 3, 42, datetime(2026, 1, 1, tzinfo=UTC), b"acct", None)
    with tracing.invocation_span(
        "orders",
        coords,
        invocation_id="inv_1",
        envelope_traceparent=upstream,
        restate_headers={"traceparent": restate},
    ) as span:
        tracing.set_outcome(span, "dead-lettered", "DecodeError")
    (finished,) = spans.get_finished_spans()
    assert finished.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert finished.parent is not None and finished.parent.span_id == 0xB7AD6B7169203331
    (link,) = finished.links
    assert link.context.trace_id == 0x11111111111111111111111111111111
    attributes = dict(finished.attributes or {})
    assert attributes["messaging.destination.name"] == "orders"
    assert attributes["messaging.kafka.offset"] == 42
    assert attributes["restate_stream.outcome"] == "dead-lettered"
    assert attributes["restate_stream.key_hash"] == tracing.key_hash(b"acct") != "acct"
    assert finished.status.status_code == trace.StatusCode.ERROR


counts = restate.VirtualObject("Counts")


@counts.handler()
async def count(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, int]]) -> None:
    total: int = await ctx.get("n") or 0
    ctx.set("n", total + event.value["n"])


def counts_kit() -> BindingsKit:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        bindings=[
            {"name": "counts", "topic": "counts", "handler": "Counts/count", "dead_letter": "dlq"}
        ],
    )
    return BindingsKit(parse_bindings(text, Path("bindings.yaml"), {}), [counts])


async def test_a_record_is_a_process_span_with_decode_and_handler_children(
    spans: InMemorySpanExporter,
) -> None:
    delivery = await counts_kit().deliver("counts", {"n": 2}, key="k", offset=7)
    assert delivery.decision == "applied"
    decode, handler, process = spans.get_finished_spans()
    assert (decode.name, handler.name, process.name) == ("decode", "handler", "process counts")
    for child in (decode, handler):
        assert child.parent is not None and child.parent.span_id == process.context.span_id
    attributes = dict(process.attributes or {})
    assert attributes["messaging.kafka.offset"] == 7
    assert attributes["restate_stream.outcome"] == "applied"


async def test_a_record_that_does_not_decode_fails_its_decode_span(
    spans: InMemorySpanExporter,
) -> None:
    delivery = await counts_kit().deliver("counts", raw=b"{not json", key="k")
    assert delivery.decision == "dead-lettered"
    decode, process = spans.get_finished_spans()
    assert decode.name == "decode" and decode.status.status_code == trace.StatusCode.ERROR
    assert "DecodeError" in (decode.status.description or "")
    assert dict(process.attributes or {})["restate_stream.cause"] == "DecodeError"


async def test_a_sampled_out_record_makes_no_spans_and_publishes_its_unsampled_trace(
    sampled_out: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = await counts_kit().deliver("counts", {"n": 1}, key="k")
    assert delivery.decision == "applied"
    broker = Broker()
    monkeypatch.setattr(Publisher, "_producer", lambda self: broker)
    coords = KafkaCoordinates("counts", 0, 1, None, b"k", None)
    with tracing.invocation_span(
        "counts", coords, invocation_id="inv_1", envelope_traceparent=None, restate_headers={}
    ) as span:
        assert not span.is_recording()
        await Publisher({}).publish(as_context(MemoryContext()), "out", "k", {"a": 1})
    assert sampled_out.get_finished_spans() == ()
    # The consumer continues the trace as unsampled rather than starting (and sampling) its own.
    traceparent = envelope_traceparent(json.loads(broker.values[0]))
    assert traceparent is not None
    _, trace_id, _, flags = traceparent.split("-")
    assert int(trace_id, 16) == span.get_span_context().trace_id
    assert int(flags, 16) & trace.TraceFlags.SAMPLED == 0


async def test_a_current_sampled_remote_parent_gets_a_send_span(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote parent (extracted, then made current) does not record, but its trace is
    sampled: a publish under it is a send span of that trace."""
    broker = Broker()
    monkeypatch.setattr(Publisher, "_producer", lambda self: broker)
    remote = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    token = context.attach(TraceContextTextMapPropagator().extract({"traceparent": remote}))
    try:
        await Publisher({}).publish(as_context(MemoryContext()), "orders", "k", {"a": 1})
    finally:
        context.detach(token)
    (send,) = spans.get_finished_spans()
    assert send.name == "send orders"
    assert send.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C


class ByBinding(Sampler):
    """Records only the binding named: a sampler that decides by the span's attributes."""

    def __init__(self, binding: str) -> None:
        self.binding = binding

    def should_sample(  # type: ignore[override]
        self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
        attributes: Any = None, links: Any = None, trace_state: Any = None,
    ) -> SamplingResult:  # fmt: skip
        wanted = (attributes or {}).get("restate_stream.binding") == self.binding
        decision = Decision.RECORD_AND_SAMPLE if wanted else Decision.DROP
        return SamplingResult(decision, attributes)  # the span starts with what it returns

    def get_description(self) -> str:
        return f"ByBinding({self.binding})"


def test_a_sampler_sees_the_binding_and_topic_when_it_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = next(_traced(monkeypatch, ByBinding("counts")))
    for binding in ("counts", "other"):
        coords = KafkaCoordinates("orders", 0, 7, None, b"k", None)
        with tracing.invocation_span(
            binding, coords, invocation_id="inv_1", envelope_traceparent=None, restate_headers={}
        ):
            pass
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["restate_stream.binding"] == "counts"
    assert span.attributes["messaging.destination.name"] == "orders"
    assert span.attributes["messaging.kafka.offset"] == 7  # set after the decision, still there

"""Tracing on the real engines: a record handled by TraceRelay, published durably, and
consumed by TraceSink through another binding yields spans of one trace, parent to child:
process <source> -> handler -> send <relay> -> process <relay> -> handler."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from connectors import TopicAdmin
from restate_stream.bindings import parse_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.bound import bind
from restate_stream.runtime.publisher import Publisher
from restate_stream.stack import LocalStack
from restate_stream.telemetry import tracing
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    wait_until,
)
from tests.integration import trace_app

pytestmark = pytest.mark.engines
RECORDS = 3


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """An SDK tracer for the handlers served in this process (the global tracer provider can
    be set only once per process, so the module's tracer is replaced for this test)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "enabled", lambda: True)
    yield exporter
    provider.shutdown()


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


async def test_a_published_event_continues_its_trace_in_the_consuming_handler(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = restate_stream_stack
    run = uuid.uuid4().hex[:8]
    source, relayed, cluster = f"trace-src-{run}", f"trace-relay-{run}", f"c-{run}"
    text = bindings_yaml(
        clusters={cluster: stack.bootstrap_servers},
        topics={t: {"cluster": cluster, "partitions": 2} for t in (source, relayed)},
        bindings=[
            {"name": f"relay-{run}", "topic": source, "handler": "TraceRelay/forward"},
            {"name": f"sink-{run}", "topic": relayed, "handler": "TraceSink/keep"},
        ],
        admin_url=stack.admin_url,
        ingress_url=stack.ingress_url,
    )
    spec = parse_bindings(text, Path("bindings.yaml"), {})
    monkeypatch.setattr(
        trace_app, "publisher", Publisher({"bootstrap.servers": stack.bootstrap_servers})
    )
    monkeypatch.setitem(trace_app.relay_topic, "name", relayed)
    bind([trace_app.relay, trace_app.sink], spec)
    TopicAdmin(stack.bootstrap_servers).create_topic(source, 2)
    produce_json(stack.bootstrap_servers, source, [(f"k{i}", {"seq": i}) for i in range(RECORDS)])
    try:
        async with restate_app(trace_app.app):
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()

            async def got() -> dict[str, list[int]]:
                return await object_state(restate_admin, "TraceSink", "got")

            await wait_until(got, lambda g: sum(map(len, g.values())) >= RECORDS, timeout=120)

            # A span ends after its handler's state is written, and the relay's own span may end
            # after the sink consumed what it published: wait for every span asserted below.
            async def ended() -> Counter[str]:
                return Counter(s.name for s in spans.get_finished_spans())

            await wait_until(
                ended,
                lambda n: n[f"process {source}"] >= RECORDS and n[f"process {relayed}"] >= RECORDS,
                timeout=60,
            )
            await trace_app.publisher.close()
    finally:
        await drop_cluster(restate_admin, cluster)

    finished = list(spans.get_finished_spans())
    consumed = [s for s in finished if s.name == f"process {relayed}"]
    assert len(consumed) == RECORDS, [s.name for s in finished]
    for span in consumed:
        assert span.kind == SpanKind.CONSUMER
        send = parent_of(span, finished)
        assert send is not None and send.name == f"send {relayed}", "parent: the durable publish"
        assert send.kind == SpanKind.PRODUCER
        handler = parent_of(send, finished)
        assert handler is not None and handler.name == "handler"
        origin = parent_of(handler, finished)
        assert origin is not None and origin.name == f"process {source}"
        assert origin.parent is None, "the source record carried no trace: a root span"
        assert {s.context.trace_id for s in (span, send, handler, origin)} == {
            origin.context.trace_id
        }, "one trace from the source record to the consuming handler"
        attributes = dict(span.attributes or {})
        assert attributes["restate_stream.outcome"] == "applied"
        assert attributes["messaging.destination.name"] == relayed
    traces = {s.context.trace_id for s in consumed}
    assert len(traces) == RECORDS, "one trace per source record"

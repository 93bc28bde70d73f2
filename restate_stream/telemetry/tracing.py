"""OpenTelemetry traces: a span per bound invocation, with children for decoding, the
handler and each durable publish; the W3C `traceparent` travels inside published CloudEvents
envelopes (the CloudEvents distributed-tracing extension), so a handler consuming an event
continues the trace of the handler that published it.

Library code uses opentelemetry-api only: while no tracer provider is configured (neither by
the application nor by `configure_tracing`), `enabled()` is False and bound handlers create
no spans at all. `configure_tracing()` sets one up from the standard OTEL_* environment
variables when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set and the
`otel` extra is installed.

A span's parent is the envelope's traceparent when the record carries one (the event's own
trace), else the traceparent Restate propagates to the invocation (when the server traces);
with both, the Restate one is a link.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from restate_stream.runtime.event import KafkaCoordinates

log = logging.getLogger("restate_stream.tracing")

TRACER_NAME = "restate_stream"
TRACEPARENT = "traceparent"
_w3c = TraceContextTextMapPropagator()


_checked: tuple[trace.TracerProvider, bool] | None = None


def enabled() -> bool:
    """Whether a tracer provider is configured (the API's default proxy traces nothing).
    Asked several times per record: the answer is kept per provider."""
    global _checked
    provider = trace.get_tracer_provider()
    if _checked is None or _checked[0] is not provider:
        off = isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
        _checked = (provider, not off)
    return _checked[1]


_tracer: tuple[trace.TracerProvider, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """The project's tracer, made once per provider: the SDK builds a new Tracer (and its
    instrumentation scope) on every get_tracer call, ~40 µs each (measured here)."""
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(TRACER_NAME))
    return _tracer[1]


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, for an envelope; None outside a span."""
    carrier: dict[str, str] = {}
    _w3c.inject(carrier)
    return carrier.get(TRACEPARENT)


def _context(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    context = _w3c.extract({TRACEPARENT: traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return context if span_context.is_valid else None


def key_hash(key: bytes | None) -> str:
    """A short, stable stand-in for the record key: keys may be personal data."""
    return "" if key is None else hashlib.sha256(key).hexdigest()[:16]


def _sampled_out() -> bool:
    """Whether the current span is part of a trace its head sampler did not sample: its
    children would be dropped too, so they are not made. (A current remote parent that was
    sampled is not recording either, but its trace is.)"""
    context = trace.get_current_span().get_span_context()
    return context.is_valid and not context.trace_flags.sampled


@contextlib.contextmanager
def invocation_span(
    binding: str,
    coords: KafkaCoordinates,
    *,
    invocation_id: str,
    envelope_traceparent: str | None,
    restate_headers: Mapping[str, str],
    records: int = 1,
) -> Iterator[Span]:
    """The span of one bound invocation (a batch: of its `records`), current while open."""
    from_envelope = _context(envelope_traceparent)
    from_restate = _context(restate_headers.get(TRACEPARENT))
    links = []
    if from_envelope is not None and from_restate is not None:
        links.append(Link(trace.get_current_span(from_restate).get_span_context()))
    with tracer().start_as_current_span(
        f"process {coords.topic}",
        context=from_envelope or from_restate,
        kind=SpanKind.CONSUMER,
        links=links,
        # What a sampler may decide by (OpenTelemetry's messaging conventions ask for these
        # at creation); the rest after its decision, so a sampled-out record costs no more.
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": coords.topic,
            "restate_stream.binding": binding,
        },
    ) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.destination.partition.id": str(coords.partition),
                    "messaging.kafka.offset": coords.offset,
                    "messaging.batch.message_count": records,
                    "restate_stream.key_hash": key_hash(coords.key),
                    "restate.invocation.id": invocation_id,
                }
            )
        yield span


@contextlib.contextmanager
def batch_span(
    binding: str, *, invocation_id: str, object_key: str, restate_headers: Mapping[str, str]
) -> Iterator[Span]:
    """The span of one batched invocation (its records' count is set once decoded); its
    parent is the trace Restate propagates, if any."""
    with tracer().start_as_current_span(
        f"process batch {binding}",
        context=_context(restate_headers.get(TRACEPARENT)),
        kind=SpanKind.CONSUMER,
        attributes={  # for a sampler, as in invocation_span
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "restate_stream.binding": binding,
        },
    ) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    "restate_stream.key_hash": key_hash(object_key.encode()),
                    "restate.invocation.id": invocation_id,
                }
            )
        yield span


def set_outcome(span: Span, decision: str, cause: str | None = None) -> None:
    span.set_attribute("restate_stream.outcome", decision)
    if cause is not None:
        span.set_attribute("restate_stream.cause", cause)
    if decision in ("dead-lettered", "dropped", "retrying"):
        span.set_status(Status(StatusCode.ERROR, cause))


@contextlib.contextmanager
def child_span(name: str, **attributes: Any) -> Iterator[Span]:
    """A child of the current span, current while open (spans made inside are its
    children); none in a sampled-out trace."""
    if _sampled_out():
        yield trace.get_current_span()
        return
    with tracer().start_as_current_span(name, attributes=attributes) as span:
        yield span


@contextlib.contextmanager
def leaf_span(name: str) -> Iterator[Span]:
    """A child of the current span that has no children of its own: not made current,
    which saves the context switch in and out; none in a sampled-out trace."""
    if _sampled_out():
        yield trace.get_current_span()
        return
    with tracer().start_span(name) as span:  # ends it, recording an escaping exception
        yield span


@contextlib.contextmanager
def publish_span(topic: str, records: int) -> Iterator[Span]:
    """A durable publish, current while open (its traceparent goes into the envelope);
    a root span when there is no trace yet, none in a sampled-out trace."""
    if _sampled_out():
        yield trace.get_current_span()
        return
    with tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": topic,
                    "messaging.batch.message_count": records,
                }
            )
        yield span


def configure_tracing(service_name: str = "restate-stream-worker") -> bool:
    """An OTLP exporter from the OTEL_* environment, if an endpoint is set; True if set up.
    Needs the `otel` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http)."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
            "pip install 'restate-stream[otel]'; tracing stays off"
        )
        return False
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True

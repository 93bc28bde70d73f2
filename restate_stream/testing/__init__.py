"""Test support: the engines, an in-process app server registered with Restate, state polling,
an in-memory context and publisher for engine-free handler tests, bindings files, the CLI,
a Schema Registry stand-in.

The fixtures live in `restate_stream.testing.pytest_plugin`, which pytest loads by itself
once restate-stream is installed.
"""

from restate_stream.testing.files import CLI, LineReader, bindings_yaml, run_cli
from restate_stream.testing.helpers import (
    RestateApp,
    ServedApp,
    batch_deliveries,
    drop_cluster,
    object_state,
    produce_json,
    scrape_metrics,
    serve_app,
    topic_records,
    wait_exit,
    wait_until,
)
from restate_stream.testing.kit import BindingsKit, Delivery, KitError, KitRecord
from restate_stream.testing.memory import (
    Call,
    MemoryContext,
    MemoryPublisher,
    Sent,
    as_context,
    invoke,
    kafka_headers,
)
from restate_stream.testing.registry import SchemaRegistryStub

__all__ = [
    "CLI",
    "BindingsKit",
    "Call",
    "Delivery",
    "KitError",
    "KitRecord",
    "LineReader",
    "MemoryContext",
    "MemoryPublisher",
    "RestateApp",
    "SchemaRegistryStub",
    "Sent",
    "ServedApp",
    "as_context",
    "batch_deliveries",
    "bindings_yaml",
    "drop_cluster",
    "invoke",
    "kafka_headers",
    "object_state",
    "produce_json",
    "run_cli",
    "scrape_metrics",
    "serve_app",
    "topic_records",
    "wait_exit",
    "wait_until",
]

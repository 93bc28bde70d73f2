"""The bindings file: which Kafka topics feed which Restate handlers, and how."""

from restate_stream.bindings.app_check import (
    AppImportError,
    check_against_app,
    find_services,
    handler_kind,
    import_app,
)
from restate_stream.bindings.checked import load_checked
from restate_stream.bindings.loader import load_bindings, parse_bindings, parse_duration
from restate_stream.bindings.model import (
    SESSION_TIMEOUT_MS,
    BatchSpec,
    Binding,
    BindingsError,
    BindingsFile,
    KafkaClusterSpec,
    Problem,
    RestateSettings,
    RetrySpec,
    TopicSpec,
    WorkerSpec,
    subscription_consumer_defaults,
)

__all__ = [
    "SESSION_TIMEOUT_MS",
    "AppImportError",
    "BatchSpec",
    "Binding",
    "BindingsError",
    "BindingsFile",
    "KafkaClusterSpec",
    "Problem",
    "RestateSettings",
    "RetrySpec",
    "TopicSpec",
    "WorkerSpec",
    "check_against_app",
    "find_services",
    "handler_kind",
    "import_app",
    "load_bindings",
    "load_checked",
    "parse_bindings",
    "parse_duration",
    "subscription_consumer_defaults",
]

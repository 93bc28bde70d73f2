"""restate-stream: Kafka-centric event processing on Restate.

The names a handler module needs, and the error tree's root and families (restate_stream.errors
has the diagram); the rest lives in the submodules (`restate_stream.control.admin`, `.plan`,
`.apply`, `.stack`, `.testing`, ...).
"""

from connectors.producer import ProduceError
from restate_stream.bindings import BindingsError, load_bindings
from restate_stream.errors import (
    ConfigurationError,
    DeadLetterError,
    KafkaClusterError,
    LocalStackError,
    RecordFormatError,
    RestateServerError,
    RestateStreamError,
    WaitTimeoutError,
    WorkerError,
)
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.formats import DecodeError
from restate_stream.runtime.publisher import Outgoing, Published, Publisher

__version__ = "0.1.0"

__all__ = [
    "BindingsError",
    "ConfigurationError",
    "DeadLetterError",
    "DecodeError",
    "KafkaClusterError",
    "KafkaEvent",
    "LocalStackError",
    "Outgoing",
    "ProduceError",
    "Published",
    "Publisher",
    "RecordFormatError",
    "RestateServerError",
    "RestateStreamError",
    "WaitTimeoutError",
    "WorkerError",
    "load_bindings",
]

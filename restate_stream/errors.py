"""One exception tree: every error restate-stream raises for people to read derives from here.

    RestateStreamError
    ├── ConfigurationError   what a person gave is not usable: the bindings file, the app,
    │                        a handler's signature, keys, a command's input
    ├── KafkaClusterError    talking to Kafka failed (ProduceError: records not acknowledged)
    ├── RecordFormatError    a record does not fit its format or schema
    ├── RestateServerError   the Restate server's admin API refused or did not answer
    ├── DeadLetterError      a dead-letter topic cannot be read, a letter cannot be redriven
    ├── LocalStackError      the local engines (processes, containers, ports) failed
    ├── WorkerError          the worker cannot start or serve
    └── WaitTimeoutError     something awaited did not happen in time

The root and the families `connectors` raises in live in `connectors.base_errors` (a leaf, so
connectors needs nothing of restate_stream); they are re-exported here. Each subclass also
keeps the built-in base it had (ValueError, RuntimeError, ...), so code that catches those
keeps working; the command line prints any RestateStreamError as one line.
"""

from connectors.base_errors import KafkaClusterError, RecordFormatError, RestateStreamError


class ConfigurationError(RestateStreamError):
    """What a person gave is not usable: the bindings file, the app it names, a handler's
    signature, a window's reducer, signing or identity keys, a command's input."""


class RestateServerError(RestateStreamError):
    """A request to the Restate server's admin API was refused or not answered."""


class DeadLetterError(RestateStreamError):
    """A dead-letter topic cannot be read, or a letter cannot be redriven."""


class LocalStackError(RestateStreamError):
    """The local engines failed: installing or starting Kafka and restate-server, their
    containers, the ports and processes they need."""


class WorkerError(RestateStreamError):
    """The worker cannot start or serve the app (or the SDK it relies on changed)."""


class WaitTimeoutError(RestateStreamError):
    """Something awaited (an engine ready, a state reached) did not happen in time."""


# The families, each directly under the root: every public error derives from one of them.
FAMILIES: tuple[type[RestateStreamError], ...] = (
    ConfigurationError,
    KafkaClusterError,
    RecordFormatError,
    RestateServerError,
    DeadLetterError,
    LocalStackError,
    WorkerError,
    WaitTimeoutError,
)

__all__ = [
    "FAMILIES",
    "ConfigurationError",
    "DeadLetterError",
    "KafkaClusterError",
    "LocalStackError",
    "RecordFormatError",
    "RestateServerError",
    "RestateStreamError",
    "WaitTimeoutError",
    "WorkerError",
    "describe",
]


def describe(exc: BaseException) -> str:
    """One line for a person: our own errors read whole (what, where, why); any other keeps
    its type's name, which says more than its message alone (`TimeoutError: ...`)."""
    if isinstance(exc, RestateStreamError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

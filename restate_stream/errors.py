"""One exception tree: every error restate-stream raises for people to read derives from here.

The root and the families `connectors` raises in live in `connectors.base_errors` (a leaf, so
connectors needs nothing of restate_stream); they are re-exported here with the rest. Each
subclass also keeps the built-in base it had (ValueError, RuntimeError, ...), so code that
catches those keeps working; the command line prints any RestateStreamError as one line.
"""

from connectors.base_errors import KafkaClusterError, RecordFormatError, RestateStreamError

__all__ = ["KafkaClusterError", "RecordFormatError", "RestateStreamError", "describe"]


def describe(exc: BaseException) -> str:
    """One line for a person: our own errors read whole (what, where, why); any other keeps
    its type's name, which says more than its message alone (`TimeoutError: ...`)."""
    if isinstance(exc, RestateStreamError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

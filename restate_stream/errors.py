"""One exception tree: every error restate-stream raises for people to read derives from here.

Each subclass also keeps the built-in base it had (ValueError, RuntimeError, ...), so code
that catches those keeps working; the command line prints any RestateStreamError as one line.
"""


class RestateStreamError(Exception):
    """An error whose message is complete for a person: what failed, where, what to do."""


def describe(exc: BaseException) -> str:
    """One line for a person: our own errors read whole (what, where, why); any other keeps
    its type's name, which says more than its message alone (`TimeoutError: ...`)."""
    if isinstance(exc, RestateStreamError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

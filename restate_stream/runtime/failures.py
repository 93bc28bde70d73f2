"""How a bound handler's failure is classified: retried, dead-lettered, or passed on.

One policy for per-record and batched bound handlers: a TerminalError anywhere in the cause
chain dead-letters at once (with its `dead_letter_type` when restate-stream's own handlers
raised a RecordError); any other error is retried by Restate until the binding's
`retry.max_attempts` failed attempts, then dead-lettered as RetriesExhausted; an SDK signal
(a suspension) wrapped by user code is passed on untouched for the SDK to handle.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import restate
from restate import SdkInternalBaseException

if TYPE_CHECKING:
    from restate_stream.runtime.event import KafkaEvent

_ATTEMPTS_REMEMBERED = 10_000


class RecordError(restate.TerminalError):
    """A record restate-stream's own handlers (windows, tables) cannot take, named by `error`:
    dead-lettered with that error type (or dropped and logged without a dead-letter topic)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.dead_letter_type = error


class DropRecord(Exception):
    """Drop this record on purpose (a late one under `late: drop`): reported as dropped with
    `cause`, which metrics count; nothing is dead-lettered."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class RejectedRecords(Exception):
    """Raised by a batched handler after it applied the rest of its batch: these events it
    could not take, each with its RecordError (dead-lettered alone) or DropRecord (dropped and
    reported). What the handler wrote to state before raising stays. A handler of values
    (`list[T]`) names the values it was given instead, told apart by identity (the same
    object, not an equal one)."""

    def __init__(
        self, rejected: list[tuple[KafkaEvent[Any] | Any, RecordError | DropRecord]]
    ) -> None:
        super().__init__(f"{len(rejected)} record(s) rejected")
        self.rejected = rejected


def causes(exc: BaseException) -> tuple[restate.TerminalError | None, bool]:
    """(the TerminalError in the cause chain, whether an SDK-internal signal is in it).

    The SDK fails an invocation for a TerminalError anywhere in `__cause__`, so a handler
    that wraps one (`raise MyError() from terminal`) is treated as terminal here too.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, restate.TerminalError):
            return cause, False
        if isinstance(cause, SdkInternalBaseException):
            return None, True
        cause = cause.__cause__
    return None, False


class Attempts:
    """Failed attempts per invocation id in this process (Restate does not tell a handler).

    Only failures of the handler count: an attempt also ends when the handler suspends or a
    ctx.run step is retried, and those must not use up the binding's retries.
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()

    def failed(self, invocation_id: str) -> int:
        count = self._seen.pop(invocation_id, 0) + 1
        self._seen[invocation_id] = count
        while len(self._seen) > _ATTEMPTS_REMEMBERED:
            self._seen.popitem(last=False)
        return count

    def forget(self, invocation_id: str) -> None:
        self._seen.pop(invocation_id, None)


@dataclass(frozen=True)
class Verdict:
    """What to do with a failed call: `retry` (raise for Restate), `dead-letter` the records
    with `error_type` and `message`, or `pass-on` (an SDK signal: raise untouched)."""

    action: Literal["retry", "dead-letter", "pass-on"]
    error_type: str = ""
    message: str = ""
    attempts: int = 0  # failed attempts so far, this one included


PASS_ON = Verdict("pass-on")


class FailurePolicy:
    """Classifies the failures of one binding's handler, counting attempts per invocation."""

    def __init__(self, max_attempts: int | None) -> None:
        self.max_attempts = max_attempts  # None: retry for ever (Restate's policy decides)
        self.attempts = Attempts()

    def classify(self, exc: Exception, invocation_id: str) -> Verdict:
        terminal, internal = causes(exc)
        if internal:
            return PASS_ON  # a suspension or SDK signal wrapped by user code
        failures = self.attempts.failed(invocation_id)
        if terminal is not None:
            kind = getattr(terminal, "dead_letter_type", "TerminalError")
            return Verdict("dead-letter", kind, terminal.message, failures)
        if self.max_attempts is None or failures < self.max_attempts:
            return Verdict("retry", type(exc).__name__, str(exc), failures)
        return Verdict("dead-letter", "RetriesExhausted", f"{type(exc).__name__}: {exc}", failures)

    def settled(self, invocation_id: str) -> None:
        """The invocation is done with (applied, dead-lettered, dropped): stop counting it."""
        self.attempts.forget(invocation_id)

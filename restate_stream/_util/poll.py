"""Poll a condition until a deadline: the one loop behind every "wait until ready/gone/done".

`poll` (blocking) and `apoll` (asyncio) call `probe` until `until(result)` holds and return
that result. Between attempts they sleep `interval` seconds, multiplied by `backoff` after
each attempt up to `max_interval`, never past the deadline; the probe always runs once more
at the deadline, so a slow sleep cannot cause a spurious timeout. Exceptions of the
`retry_on` types count as "not yet"; any other exception propagates at once (so a probe can
give up early, e.g. when the process it waits for has exited). On timeout, PollTimeout says
what was awaited and the last result or error seen.

Written here rather than taken from tenacity/stamina: those retry on exceptions and need
the same predicate, message and deadline glue to poll a value, in more lines than this.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from restate_stream.errors import WaitTimeoutError

T = TypeVar("T")


class PollTimeout(WaitTimeoutError, TimeoutError):
    """`what` did not happen within `timeout` seconds; `last` describes the final attempt."""

    def __init__(self, what: str, timeout: float, last: str) -> None:
        super().__init__(f"{what}: not done within {timeout:g}s (last: {last})")
        self.what = what
        self.timeout = timeout
        self.last = last


class _Attempts(Generic[T]):
    """Deadline, next sleep and what the last attempt saw: shared by poll and apoll."""

    def __init__(
        self,
        what: str,
        timeout: float,
        interval: float,
        backoff: float,
        max_interval: float | None,
        describe: Callable[[T], str],
    ) -> None:
        if timeout < 0 or interval <= 0 or backoff < 1:
            raise ValueError(
                f"polling for {what}: timeout must be >= 0, interval > 0 and backoff >= 1 "
                f"(got {timeout}, {interval}, {backoff})"
            )
        self.what, self.timeout, self.describe = what, timeout, describe
        self.deadline = time.monotonic() + timeout
        self.delay, self.backoff = interval, backoff
        self.max_interval = max_interval
        self.last = "no attempt finished"

    def saw(self, result: T) -> None:
        self.last = self.describe(result)

    def failed(self, exc: BaseException) -> None:
        self.last = f"{type(exc).__name__}: {exc}"

    def pause(self) -> float:
        """Seconds to sleep before the next attempt; PollTimeout once the deadline passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise PollTimeout(self.what, self.timeout, self.last)
        pause = min(self.delay, remaining)
        self.delay *= self.backoff
        if self.max_interval is not None:
            self.delay = min(self.delay, self.max_interval)
        return pause


def poll(
    probe: Callable[[], T],
    *,
    what: str,
    timeout: float,
    until: Callable[[T], bool] = bool,
    interval: float = 0.2,
    backoff: float = 1.0,
    max_interval: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    describe: Callable[[T], str] = repr,
) -> T:
    """Call `probe` until `until(result)`; return that result or raise PollTimeout."""
    attempts = _Attempts(what, timeout, interval, backoff, max_interval, describe)
    while True:
        try:
            result = probe()
        except retry_on as exc:
            attempts.failed(exc)
        else:
            if until(result):
                return result
            attempts.saw(result)
        time.sleep(attempts.pause())


async def apoll(
    probe: Callable[[], Awaitable[T]],
    *,
    what: str,
    timeout: float,
    until: Callable[[T], bool] = bool,
    interval: float = 0.2,
    backoff: float = 1.0,
    max_interval: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    describe: Callable[[T], str] = repr,
) -> T:
    """The asyncio form of `poll`: awaits `probe` and sleeps without blocking the loop."""
    attempts = _Attempts(what, timeout, interval, backoff, max_interval, describe)
    while True:
        try:
            result = await probe()
        except retry_on as exc:
            attempts.failed(exc)
        else:
            if until(result):
                return result
            attempts.saw(result)
        await asyncio.sleep(attempts.pause())

"""The statuses every few seconds, and the last minutes of them per binding for the charts.

records/s is the change of the binding's committed offsets (summed over its partitions)
between two samples, over the time between them: what the consumer group got through.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from restate_stream.control.status import BindingStatus
from restate_stream.errors import describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    committed: int | None  # the group's committed offsets, summed; None: lag unknown
    lag: int | None


def _sample(status: BindingStatus, at: float) -> Sample:
    if status.lag_error is not None:
        return Sample(at, None, None)
    committed = sum(p.committed for p in status.lag if p.committed is not None)
    return Sample(at, committed, status.total_lag)


class Sampler:
    def __init__(
        self,
        read: Callable[[], Awaitable[list[BindingStatus]]],
        *,
        interval: float = 5.0,
        window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.interval = interval
        self.clock = clock
        self.latest: list[BindingStatus] | None = None
        self.latest_at: float | None = None  # time.time() of the latest read, for people
        self.error: str | None = None  # the last read's failure (the latest statuses stay)
        self.history: dict[str, deque[Sample]] = {}
        self._size = max(int(window / interval), 2)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    async def sample(self) -> list[BindingStatus] | None:
        """Read the statuses now (one read at a time) and record them."""
        async with self._lock:
            try:
                statuses = await self.read()
            except Exception as exc:  # shown on the pages; the next round tries again
                error = describe(exc)
                if error != self.error:  # once per failure, not every few seconds
                    log.warning("reading the statuses failed: %s", error)
                self.error = error
                return self.latest
            now = self.clock()
            for status in statuses:
                series = self.history.setdefault(status.name, deque(maxlen=self._size))
                series.append(_sample(status, now))
            self.latest, self.latest_at, self.error = statuses, time.time(), None
            return statuses

    async def current(self) -> list[BindingStatus] | None:
        """The latest statuses; read first when there are none yet."""
        if self.latest is None:
            return await self.sample()
        return self.latest

    def wake(self) -> None:
        """Sample soon (after an action changed something)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self.sample()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def lags(self, name: str) -> list[float]:
        return [float(s.lag) for s in self.history.get(name, ()) if s.lag is not None]

    def rates(self, name: str) -> list[float]:
        """records/s between consecutive samples with a known lag (never negative: a group
        reset moves its offsets back)."""
        known = [s for s in self.history.get(name, ()) if s.committed is not None]
        rates = []
        for before, after in itertools.pairwise(known):
            seconds = after.at - before.at
            assert before.committed is not None and after.committed is not None
            if seconds > 0:
                rates.append(max(after.committed - before.committed, 0) / seconds)
        return rates

"""The dashboard's sampler: records/s from the group's committed offsets, lag over time."""

from __future__ import annotations

import asyncio
from itertools import count

from connectors import PartitionLag
from restate_stream.control.status import BindingStatus
from restate_stream.ui.sampler import Sampler


def status(committed: list[int | None], end: int = 1000, error: str | None = None) -> BindingStatus:
    s = BindingStatus("b", "kafka://c/t", "service://S/h", "g", "active")
    s.lag = [PartitionLag(p, c, end, end - (c or 0)) for p, c in enumerate(committed)]
    s.lag_error = error
    return s


def test_rates_and_lags_over_the_samples() -> None:
    reads = iter(
        [
            [status([100, 50])],
            [status([200, 70])],  # +120 in 10 s
            [status([0, 0], error="KafkaException: down")],  # unknown: skipped
            [status([300, None])],  # a partition without commit counts 0: 300 - 270 = +30 in 20 s
            [status([10, 0])],  # the group was reset: not a negative rate
        ]
    )
    ticks = count()

    async def read() -> list[BindingStatus]:
        return next(reads)

    sampler = Sampler(read, interval=10.0, clock=lambda: float(next(ticks) * 10))

    async def run() -> None:
        for _ in range(5):
            await sampler.sample()

    asyncio.run(run())
    assert sampler.rates("b") == [12.0, 1.5, 0.0]
    assert sampler.lags("b") == [1850.0, 1730.0, 1700.0, 1990.0]
    assert sampler.rates("unknown") == [] and sampler.lags("unknown") == []


def test_a_failed_read_keeps_the_last_statuses_and_says_why() -> None:
    results: list[Exception | list[BindingStatus]] = [[status([1])], ConnectionError("down")]

    async def read() -> list[BindingStatus]:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    sampler = Sampler(read)

    async def run() -> None:
        first = await sampler.sample()
        assert first is not None and sampler.error is None
        assert await sampler.sample() is first
        assert sampler.error == "ConnectionError: down"

    asyncio.run(run())


def test_the_window_keeps_the_last_minutes_only() -> None:
    async def read() -> list[BindingStatus]:
        return [status([5])]

    sampler = Sampler(read, interval=5.0, window=60.0)

    async def run() -> None:
        for _ in range(30):
            await sampler.sample()

    asyncio.run(run())
    assert len(sampler.history["b"]) == 12

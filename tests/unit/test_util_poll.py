"""The poll helper on a fake clock: what it returns, how it waits, what its timeout says."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Iterator

import pytest

from restate_stream._util import poll as poll_module
from restate_stream._util.poll import PollTimeout, apoll, poll
from restate_stream.errors import RestateStreamError


class FakeClock:
    """monotonic() and sleep() for the helper: sleeping advances time, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(
        poll_module, "time", types.SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep)
    )
    monkeypatch.setattr(poll_module, "asyncio", types.SimpleNamespace(sleep=fake.async_sleep))
    yield fake


def counter(done_at: int) -> tuple[list[int], Callable[[], int]]:
    calls: list[int] = []

    def probe() -> int:
        calls.append(len(calls) + 1)
        return calls[-1] if calls[-1] >= done_at else 0

    return calls, probe


def test_returns_the_first_result_that_passes(clock: FakeClock) -> None:
    calls, probe = counter(done_at=3)
    assert poll(probe, what="three calls", timeout=10, interval=0.5) == 3
    assert calls == [1, 2, 3]
    assert clock.sleeps == [0.5, 0.5]


def test_a_result_that_passes_at_once_never_sleeps(clock: FakeClock) -> None:
    assert poll(lambda: "ready", what="x", timeout=0) == "ready"
    assert clock.sleeps == []


def test_until_decides_and_the_timeout_names_what_and_the_last_result(clock: FakeClock) -> None:
    values = iter(range(100))
    with pytest.raises(PollTimeout) as caught:
        poll(lambda: next(values), until=lambda n: n > 1000, what="n above 1000", timeout=1)
    error = caught.value
    assert isinstance(error, TimeoutError) and isinstance(error, RestateStreamError)
    assert str(error) == "n above 1000: not done within 1s (last: 5)"
    assert (error.what, error.timeout, error.last) == ("n above 1000", 1, "5")


def test_probes_once_more_at_the_deadline_and_never_sleeps_past_it(clock: FakeClock) -> None:
    calls, probe = counter(done_at=1000)
    with pytest.raises(PollTimeout):
        poll(probe, what="never", timeout=1.0, interval=0.3)
    assert clock.sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert len(calls) == 5  # at 0, 0.3, 0.6, 0.9 and at the deadline


def test_backoff_grows_the_interval_up_to_the_cap(clock: FakeClock) -> None:
    with pytest.raises(PollTimeout):
        poll(lambda: False, what="never", timeout=10, interval=0.1, backoff=2, max_interval=1)
    assert clock.sleeps[:6] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_retry_on_errors_count_as_not_yet_and_the_last_one_is_reported(clock: FakeClock) -> None:
    attempts = iter([ConnectionError("refused"), ConnectionError("refused again"), "up"])

    def probe() -> str:
        item = next(attempts)
        if isinstance(item, Exception):
            raise item
        return item

    assert poll(probe, what="up", timeout=5, retry_on=(ConnectionError,)) == "up"

    def refuses() -> str:
        raise ConnectionError("port 9 refused")

    with pytest.raises(PollTimeout, match=r"last: ConnectionError: port 9 refused"):
        poll(refuses, what="port 9", timeout=1, retry_on=(ConnectionError,))


def test_other_errors_stop_the_wait_at_once(clock: FakeClock) -> None:
    calls: list[int] = []

    def probe() -> bool:
        calls.append(1)
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="the process exited"):
        poll(probe, what="x", timeout=10, retry_on=(ConnectionError,))
    assert calls == [1] and clock.sleeps == []


def test_describe_formats_the_last_result(clock: FakeClock) -> None:
    with pytest.raises(PollTimeout, match=r"\(last: 2 of 3 done\)"):
        poll(
            lambda: 2,
            until=lambda n: n >= 3,
            what="3",
            timeout=1,
            describe=lambda n: f"{n} of 3 done",
        )


def test_before_any_attempt_finished_the_message_says_so(clock: FakeClock) -> None:
    attempts = poll_module._Attempts[int]("x", 0, 1, 1, None, repr)
    with pytest.raises(PollTimeout, match="no attempt finished"):
        attempts.pause()


@pytest.mark.parametrize(
    ("timeout", "interval", "backoff"), [(-1, 0.1, 1), (1, 0, 1), (1, 0.1, 0.5)]
)
def test_nonsense_arguments_are_refused(
    clock: FakeClock, timeout: float, interval: float, backoff: float
) -> None:
    with pytest.raises(ValueError, match="polling for x"):
        poll(lambda: True, what="x", timeout=timeout, interval=interval, backoff=backoff)


def test_apoll_awaits_the_probe_and_sleeps_on_the_loop(clock: FakeClock) -> None:
    seen: list[int] = []

    async def probe() -> list[int]:
        seen.append(len(seen))
        return seen

    async def scenario() -> list[int]:
        return await apoll(probe, until=lambda s: len(s) >= 3, what="three", timeout=5, interval=1)

    assert asyncio.run(scenario()) == [0, 1, 2]
    assert clock.sleeps == [1, 1]


def test_apoll_times_out_like_poll(clock: FakeClock) -> None:
    async def refused() -> bool:
        raise OSError("connection refused")

    async def scenario() -> bool:
        return await apoll(refused, what="the admin API", timeout=2, retry_on=(OSError,))

    with pytest.raises(PollTimeout) as caught:
        asyncio.run(scenario())
    assert str(caught.value) == (
        "the admin API: not done within 2s (last: OSError: connection refused)"
    )

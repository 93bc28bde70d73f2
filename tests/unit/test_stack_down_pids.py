"""`stack down` signals a recorded pid only while it is still the engine `stack up` started:
same start time, the engine's command line (no engines run here: stand-ins take their pids)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from restate_stream._util.pids import RecordedProcess, has_option, start_time
from restate_stream._util.poll import poll
from restate_stream.stack import StackPorts, install, local
from restate_stream.stack.local import StackError, stack_down, stack_running
from tests.unit.stand_in import StandIn, cmdline


def _sleeper(*args: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(120)", *args]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "kafka.log").write_text("")
    return tmp_path


@pytest.fixture
def stand_ins() -> Iterator[list[StandIn]]:
    started: list[StandIn] = []
    yield started
    for s in started:
        s.end()


def _record(home: Path, kafka: RecordedProcess, restate: RecordedProcess) -> None:
    recorded = {"kafka": kafka, "restate": restate}
    state = {
        "ports": StackPorts().__dict__,
        "cache": None,
        "pids": {name: r.pid for name, r in recorded.items()},
        "start_times": {name: r.started for name, r in recorded.items()},
    }
    (home / local.STATE_FILE).write_text(json.dumps(state))


def _kafka_argv(home: Path) -> list[str]:
    """The arguments that make a command line Kafka's for this home (the JVM's)."""
    return _sleeper("kafka.Kafka", str(home / "kafka" / "server.properties"))


def test_a_process_that_only_names_the_home_is_not_signalled(
    home: Path, stand_ins: list[StandIn]
) -> None:
    """A recycled pid now running `tail -f <home>/kafka/kafka.log`: its command line holds the
    home path, and it is not Kafka."""
    tail = StandIn(["tail", "-f", str(home / "kafka" / "kafka.log")])
    other = StandIn(_sleeper(str(home / "restate")))
    stand_ins += [tail, other]
    _record(home, RecordedProcess.of(tail.pid), RecordedProcess.of(other.pid))
    said: list[str] = []
    assert not stack_running(home)
    stack_down(home, progress=said.append)
    assert tail.alive() and other.alive()
    assert f"kafka: not running (pid {tail.pid} is not the kafka `stack up` started)" in said
    assert not (home / local.STATE_FILE).exists()


def test_a_recycled_pid_with_the_engines_command_line_is_not_signalled(
    home: Path, stand_ins: list[StandIn]
) -> None:
    """Same pid, same command line, another start time: another process."""
    kafka = StandIn(_kafka_argv(home))
    stand_ins.append(kafka)
    started = start_time(kafka.pid)
    assert started is not None
    earlier = RecordedProcess(kafka.pid, started - 1)
    _record(home, earlier, RecordedProcess(kafka.pid, started - 1))
    stack_down(home, progress=lambda _: None)
    assert kafka.alive()


def test_the_engine_that_was_recorded_is_stopped(home: Path, stand_ins: list[StandIn]) -> None:
    kafka = StandIn(_kafka_argv(home))
    stand_ins.append(kafka)
    gone = RecordedProcess(2**22 + 1, 1)  # no such pid (above the kernel's pid_max)
    _record(home, RecordedProcess.of(kafka.pid), gone)
    assert stack_running(home)
    stack_down(home, progress=lambda _: None)
    poll(lambda: not kafka.alive(), what="the recorded Kafka to stop", timeout=10)


def test_a_refused_signal_is_named_and_the_record_kept(
    home: Path, stand_ins: list[StandIn], monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = StandIn(_kafka_argv(home))
    stand_ins.append(kafka)
    _record(home, RecordedProcess.of(kafka.pid), RecordedProcess(2**22 + 1, 1))

    def refused(pgid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "killpg", refused)
    with pytest.raises(StackError) as error:
        stack_down(home, progress=lambda _: None)
    assert f"could not stop kafka (pid {kafka.pid}): not permitted to send SIGTERM" in str(
        error.value
    )
    assert (home / local.STATE_FILE).exists()


def test_a_pid_file_line_holds_the_pid_and_its_start_time() -> None:
    me = RecordedProcess.of(os.getpid())
    assert RecordedProcess.from_text(me.to_text() + "\n") == me
    assert RecordedProcess.from_text("123") == RecordedProcess(123, None)
    assert RecordedProcess.from_text("12 x") is None
    assert me.alive_as(lambda argv: argv == cmdline(os.getpid()))
    assert not RecordedProcess(os.getpid(), (me.started or 0) + 1).alive_as(lambda argv: True)
    assert has_option(["x", "--base-dir", "/d"], "--base-dir", "/d")
    assert not has_option(["x", "--base-dir=/d", "/d"], "--base-dir", "/d")


def test_restate_started_from_another_cache_is_still_stopped(
    home: Path,
    stand_ins: list[StandIn],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`stack up` ran with one $RESTATE_STREAM_CACHE, `stack down` in a shell with another:
    the server is still the one recorded (its pid, start time and --base-dir say so)."""
    started_from = tmp_path_factory.mktemp("cache-at-up")
    binary = install.restate_install(started_from).binary
    restate = StandIn(_sleeper(str(binary), "--base-dir", str(home / "restate" / "data")))
    stand_ins.append(restate)
    _record(home, RecordedProcess(2**22 + 1, 1), RecordedProcess.of(restate.pid))
    monkeypatch.setenv(install.CACHE_ENV, str(tmp_path_factory.mktemp("cache-at-down")))
    said: list[str] = []
    assert stack_running(home)
    stack_down(home, progress=said.append)
    assert f"restate: stopping (pid {restate.pid})" in said
    poll(lambda: not restate.alive(), what="the recorded Restate to stop", timeout=10)

"""A worker whose serving process dies on its own exits non-zero, so a supervisor restarts it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from restate_stream._util.poll import poll
from restate_stream._util.ports import port_is_free
from restate_stream.runtime.serving import SERVERS, ServerName
from restate_stream.runtime.worker import WorkerProcess
from tests.integration.processes import alive

each_server = pytest.mark.parametrize("server", SERVERS)


def _serving_processes(pid: int) -> list[int]:
    """The worker's spawned serving processes (not multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"resource_tracker" not in command:
                found.append(int(child))
    return found


def one_serving_process(worker: WorkerProcess) -> int:
    [serving] = poll(
        lambda: _serving_processes(worker.process.pid) if worker.process else [],
        until=lambda pids: len(pids) == 1,
        what=f"{worker.server}'s one serving process",
        timeout=30,
    )
    return serving


@each_server
def test_a_killed_serving_process_makes_the_worker_exit_non_zero(
    tmp_path: Path, server: ServerName
) -> None:
    worker = WorkerProcess("tests.integration.pids_app:app", tmp_path / "worker.log", server=server)
    worker.start()
    try:
        serving = one_serving_process(worker)
        os.kill(serving, signal.SIGKILL)
        code = poll(
            lambda: worker.process.returncode if worker.process else 0,
            until=lambda c: c is not None,
            what="the worker to exit",
            timeout=60,
        )
        assert code not in (None, 0), code
        assert "a serving process exited unexpectedly" in (tmp_path / "worker.log").read_text()
    finally:
        worker.stop()


@each_server
def test_sigterm_still_stops_the_worker_with_status_zero(
    tmp_path: Path, server: ServerName
) -> None:
    worker = WorkerProcess("tests.integration.pids_app:app", tmp_path / "worker.log", server=server)
    worker.start()
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGTERM)
    code = poll(
        lambda: worker.process.returncode if worker.process else 0,
        until=lambda c: c is not None,
        what="the worker to exit",
        timeout=60,
    )
    worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert "Traceback" not in log, log


@each_server
def test_the_serving_processes_stop_when_the_worker_is_killed(
    tmp_path: Path, server: ServerName
) -> None:
    """SIGKILL (or the OOM killer) leaves the worker's serving processes no parent to stop
    them: each would serve on, orphaned, holding the port."""
    worker = WorkerProcess("tests.integration.pids_app:app", tmp_path / "worker.log", server=server)
    worker.start()
    try:
        serving = one_serving_process(worker)
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGKILL)  # the worker alone, not its group
        gone = poll(
            lambda: not alive(serving),
            until=bool,
            what=f"{server}'s serving process {serving} to stop",
            timeout=10,
        )
        assert gone and port_is_free(worker.port)
    finally:
        worker.stop()  # SIGKILLs whatever is left of the group

"""A worker whose serving process dies on its own exits non-zero, so a supervisor restarts it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from restate_stream._util.poll import poll
from restate_stream.runtime.serving import SERVERS, ServerName
from restate_stream.runtime.worker import WorkerProcess

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


@each_server
def test_a_killed_serving_process_makes_the_worker_exit_non_zero(
    tmp_path: Path, server: ServerName
) -> None:
    worker = WorkerProcess("tests.integration.pids_app:app", tmp_path / "worker.log", server=server)
    worker.start()
    try:
        assert worker.process is not None
        [serving] = poll(
            lambda: _serving_processes(worker.process.pid) if worker.process else [],
            until=lambda pids: len(pids) == 1,
            what=f"{server}'s one serving process",
            timeout=30,
        )
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

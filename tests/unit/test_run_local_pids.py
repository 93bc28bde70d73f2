"""deploy/restate-cluster/run-local.sh never signals a recorded pid that is not its node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from restate_stream._util.pids import start_time
from restate_stream._util.poll import poll
from tests.unit.stand_in import StandIn

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/restate-cluster/run-local.sh"


def run_local(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, "CLUSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_stale_pid_file_naming_another_process_is_not_the_node(tmp_path: Path) -> None:
    for i in (1, 2, 3):
        (tmp_path / f"node-{i}").mkdir()
    # A live process that is not node 1 (this test): a crash left its pid, the pid was reused.
    (tmp_path / "node-1" / "pid").write_text(str(os.getpid()))
    status = run_local(tmp_path, "status")
    assert status.returncode == 1
    assert f"node 1: down (stale pid file: pid {os.getpid()} is not this node)" in status.stdout
    assert "node 2: down" in status.stdout
    killed = run_local(tmp_path, "kill-node", "1")
    assert killed.returncode == 1 and "node 1 is not running" in killed.stderr
    stopped = run_local(tmp_path, "stop")
    assert stopped.returncode == 0
    # Still alive: we are here to assert it.
    assert not (tmp_path / "node-1" / "pid").exists()


def test_node_arguments_are_checked(tmp_path: Path) -> None:
    result = run_local(tmp_path, "kill-node", "4")
    assert result.returncode == 1
    assert "which node? expected 1, 2 or 3, got '4'" in result.stderr


def _sleeper(*args: str) -> StandIn:
    return StandIn([sys.executable, "-c", "import time; time.sleep(120)", *args])


def test_a_process_that_only_names_the_node_dir_is_not_signalled(tmp_path: Path) -> None:
    """A recycled pid now running something with the node's data dir on its command line (an
    old pid file without a start time): only `--base-dir <dir>` makes it the node's server."""
    (tmp_path / "node-1").mkdir()
    tail = _sleeper("tail", "-f", str(tmp_path / "node-1" / "data"))
    try:
        (tmp_path / "node-1" / "pid").write_text(f"{tail.pid}\n")
        killed = run_local(tmp_path, "kill-node", "1")
        assert killed.returncode == 1 and "node 1 is not running" in killed.stderr
        assert tail.alive()
    finally:
        tail.end()


def test_a_recorded_pid_is_the_node_only_with_its_start_time(tmp_path: Path) -> None:
    (tmp_path / "node-1").mkdir()
    server = _sleeper("--base-dir", str(tmp_path / "node-1" / "data"))
    try:
        started = start_time(server.pid)
        assert started is not None
        (tmp_path / "node-1" / "pid").write_text(f"{server.pid} {started + 1}\n")
        killed = run_local(tmp_path, "kill-node", "1")
        assert killed.returncode == 1 and "node 1 is not running" in killed.stderr
        assert server.alive()
        # The start time it has: the node's server (killed: a crash).
        (tmp_path / "node-1" / "pid").write_text(f"{server.pid} {started}\n")
        killed = run_local(tmp_path, "kill-node", "1")
        assert killed.returncode == 0, killed.stderr
        poll(lambda: not server.alive(), what="node 1's stand-in to die", timeout=10)
    finally:
        server.end()

"""deploy/restate-cluster/run-local.sh never signals a recorded pid that is not its node."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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

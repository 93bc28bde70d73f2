"""The local stack's process lifecycle on the real engines: CLI up/status/down, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from restate_stream.stack import StackPorts
from restate_stream.testing import LineReader, run_cli

pytestmark = pytest.mark.engines


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def _system_temp_invoker_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("invoker-*"))


def test_cli_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    before = _system_temp_invoker_dirs()
    ports = StackPorts.free()
    home = tmp_path / "stack"
    port_args = [
        f"--kafka-port={ports.kafka}",
        f"--kafka-controller-port={ports.kafka_controller}",
        f"--ingress-port={ports.ingress}",
        f"--admin-port={ports.admin}",
        f"--fabric-port={ports.fabric}",
    ]
    up = run_cli("stack", "up", "--home", str(home), *port_args, timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = run_cli("stack", "status", "--home", str(home), "--json", timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        engines = {e["name"]: e for e in json.loads(status.stdout)}
        assert engines["kafka"]["healthy"] and engines["restate"]["healthy"]
        pids = [engines["kafka"]["pid"], engines["restate"]["pid"]]
        assert all(_alive(p) for p in pids)
    finally:
        down = run_cli("stack", "down", "--home", str(home), timeout=90)
    assert down.returncode == 0, down.stdout + down.stderr
    assert _wait_gone(pids, 5) == []
    after = run_cli("stack", "status", "--home", str(home), timeout=30)
    assert after.returncode == 2 and "no stack is running" in after.stderr
    # restate-server's invokers left their temporary directories in the stack's home, where
    # they go with it, not in the system's temp directory (every server this suite starts
    # is the stack's).
    assert list((home / "restate" / "tmp").glob("invoker-*")), "no invoker directory in home"
    assert _system_temp_invoker_dirs() - before == set()


_OWNER = """
import json, sys, time
from pathlib import Path
from restate_stream.stack import LocalStack, StackPorts
stack = LocalStack(Path(sys.argv[1]), StackPorts.free())
stack.start(install=False, progress=lambda _: None)
print(json.dumps([stack.kafka.process.pid, stack.restate.process.pid]), flush=True)
time.sleep(600)
"""


def test_engines_die_with_a_killed_owner(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        first = LineReader(owner.stdout).until(lambda _: True, timeout=180)
        assert first is not None, "the owner never reported its engines' pids"
        pids: list[int] = json.loads(first)
        assert all(_alive(p) for p in pids)
        owner.send_signal(signal.SIGKILL)  # no cleanup code runs in the owner
        owner.wait(10)
        leftovers = _wait_gone(pids, 30)
    finally:
        owner.kill()
    for pid in leftovers:  # clean up before failing, so the failure leaves nothing behind
        os.killpg(pid, signal.SIGKILL)
    assert leftovers == [], f"engines outlived their owner: {leftovers}"

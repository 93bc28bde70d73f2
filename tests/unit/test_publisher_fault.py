"""The crash hook the crash-safety tests rely on: it must really kill the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from restate_stream.runtime.publisher import AFTER_ACK, FAULT_ENV

PROGRAM = f"""
from restate_stream.runtime.publisher import _fault
_fault({AFTER_ACK!r})
print("survived")
"""


def run(fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_fault_point_named_in_the_environment_dies_by_sigkill() -> None:
    died = run(AFTER_ACK)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert "survived" not in died.stdout


def test_other_or_no_fault_points_leave_the_process_alone() -> None:
    for fault in (None, "before-publish"):
        lived = run(fault)
        assert lived.returncode == 0 and lived.stdout.strip() == "survived", lived.stderr

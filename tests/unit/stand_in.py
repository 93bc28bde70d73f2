"""A stand-in process for tests of pid checks: ours, in its own group, reaped when it exits."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from restate_stream._util.poll import poll


class StandIn:
    """A process of ours in its own group, reaped as soon as it exits (so a stop that signals
    it is not left waiting for a zombie)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.process = subprocess.Popen(argv, start_new_session=True)
        self.pid = self.process.pid
        threading.Thread(target=self.process.wait, daemon=True).start()
        # Until the child has exec'd, its command line is still this test's.
        poll(lambda: cmdline(self.pid) == list(argv), what="the stand-in's exec", timeout=10)

    def alive(self) -> bool:
        return self.process.poll() is None

    def end(self) -> None:
        self.process.kill()
        self.process.wait()


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]

"""`restate-stream dev` as a subprocess in its own process group, stopped as Ctrl-C stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from restate_stream.stack import StackPorts
from restate_stream.testing import CLI, LineReader

# dev as a terminal starts it: SIGINT at its default, whatever this process inherited. A
# shell running the suite in the background (`... &` with no job control) starts it with
# SIGINT ignored, which exec keeps: dev then never saw the test's Ctrl-C and was SIGKILLed.
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
    *CLI[1:],
]


@dataclass
class Dev:
    process: subprocess.Popen[str]
    output: LineReader
    stopped_output: str = ""  # everything it printed, once stopped


def port_flags(ports: StackPorts, *fields: str) -> list[str]:
    """--<field>-port=N for the given StackPorts fields (all of them when none is named)."""
    chosen = fields or tuple(vars(ports))
    return [f"--{field.replace('_', '-')}-port={getattr(ports, field)}" for field in chosen]


@contextmanager
def running_dev(
    args: list[str], *, cwd: Path, env: Mapping[str, str] | None = None
) -> Iterator[Dev]:
    """Start `restate-stream dev ARGS`, wait until it says it runs (failing with its output
    if it does not), and SIGINT its process group on the way out (SIGKILL after 60 s)."""
    process = subprocess.Popen(
        [*AS_FROM_A_TERMINAL, "dev", *args],
        cwd=cwd,
        env={**os.environ, **env} if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    dev = Dev(process, LineReader(process.stdout))
    try:
        running = dev.output.until(lambda line: "dev: running" in line, timeout=180)
        assert running is not None, "".join(dev.output.lines)
        yield dev
    finally:
        if process.poll() is None:  # a test may have killed it
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        dev.stopped_output = dev.output.rest()

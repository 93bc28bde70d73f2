"""Test inputs: a bindings file from plain data, and the CLI run as a user runs it."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

CLI = [sys.executable, "-m", "restate_stream.cli"]


def bindings_yaml(
    *,
    clusters: Mapping[str, str | Mapping[str, str]],
    bindings: Sequence[Mapping[str, Any]] = (),
    topics: Mapping[str, Mapping[str, Any]] | None = None,
    worker: Mapping[str, Any] | None = None,
    admin_url: str | None = None,
    ingress_url: str | None = None,
) -> str:
    """bindings.yaml text. A cluster is its bootstrap servers, or all its client properties.

    bindings_yaml(clusters={"local": bootstrap},
                  topics={"orders": {"cluster": "local", "partitions": 2}},
                  bindings=[{"name": "orders", "topic": "orders", "handler": "S/h"}])
    """
    doc: dict[str, Any] = {}
    restate = {"admin_url": admin_url, "ingress_url": ingress_url}
    if any(restate.values()):
        doc["restate"] = {k: v for k, v in restate.items() if v}
    doc["kafka"] = {
        "clusters": {
            name: {"bootstrap.servers": props} if isinstance(props, str) else dict(props)
            for name, props in clusters.items()
        }
    }
    if topics:
        doc["topics"] = {name: dict(spec) for name, spec in topics.items()}
    if worker is not None:
        doc["worker"] = dict(worker)
    if bindings:
        doc["bindings"] = [_plain(b) for b in bindings]
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def run_cli(
    *args: str,
    timeout: float = 120,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`restate-stream ARGS...` in a subprocess; output captured as text, killed at `timeout`."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env} if env is not None else None,
        input=input,
    )


class LineReader:
    """Lines of a subprocess's text output, read by a thread so that waiting for one has a
    deadline (a bare readline() on a hung process blocks the test forever)."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)  # end of output

    def until(self, done: Callable[[str], bool], timeout: float) -> str | None:
        """The first next line for which `done` holds, or None at end of output or deadline."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self._queue.put(None)  # keep reporting the end
                return None
            self.lines.append(line)
            if done(line):
                return line
        return None

    def rest(self, timeout: float = 30.0) -> str:
        """Everything read so far and up to the end of output (after the process exited)."""
        self.until(lambda _: False, timeout)
        return "".join(self.lines)

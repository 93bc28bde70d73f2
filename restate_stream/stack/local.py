"""The embedded local stack: one Kafka broker and one Restate server as child processes.

Used three ways: by the pytest plugin (free ports, temp dir, tied to the test process),
by `restate-stream stack up|down|status` (detached, pids recorded in `<home>/stack.json`),
and by `restate-stream dev`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from connectors import KafkaUnavailableError, TopicAdmin
from restate_stream._util.pids import RecordedProcess
from restate_stream._util.poll import PollTimeout, poll
from restate_stream._util.ports import ensure_free, free_ports
from restate_stream._util.process import SignalRefusedError, stop_group, tail
from restate_stream.errors import LocalStackError
from restate_stream.stack.install import (
    Progress,
    cache_dir,
    install_all,
    kafka_install,
    restate_install,
)
from restate_stream.stack.kafka import KafkaBroker, KafkaPorts
from restate_stream.stack.restate import RestatePorts, RestateServer

STATE_FILE = "stack.json"


def default_home() -> Path:
    return Path(os.environ.get("RESTATE_STREAM_STACK_HOME") or cache_dir() / "stack")


@dataclass(frozen=True)
class StackPorts:
    kafka: int = KafkaPorts.broker
    kafka_controller: int = KafkaPorts.controller
    ingress: int = RestatePorts.ingress
    admin: int = RestatePorts.admin
    fabric: int = RestatePorts.fabric

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*free_ports(5))

    def by_purpose(self) -> dict[str, int]:
        return {
            "Kafka broker": self.kafka,
            "Kafka controller": self.kafka_controller,
            "Restate ingress": self.ingress,
            "Restate admin": self.admin,
            "Restate fabric": self.fabric,
        }


class StackError(LocalStackError, RuntimeError):
    pass


class LocalStack:
    def __init__(
        self,
        home: Path,
        ports: StackPorts | None = None,
        cache: Path | None = None,
    ) -> None:
        self.home = home
        self.ports = ports or StackPorts()
        self.cache = cache
        self.kafka = KafkaBroker(
            kafka_install(cache),
            home / "kafka",
            KafkaPorts(self.ports.kafka, self.ports.kafka_controller),
        )
        self.restate = RestateServer(
            restate_install(cache),
            home / "restate",
            RestatePorts(self.ports.ingress, self.ports.admin, self.ports.fabric),
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def admin_url(self) -> str:
        return self.restate.admin_url

    @property
    def ingress_url(self) -> str:
        return self.restate.ingress_url

    @property
    def log_paths(self) -> list[Path]:
        return [self.kafka.log_path, self.restate.log_path]

    def start(
        self, *, detached: bool = False, install: bool = True, progress: Progress = print
    ) -> None:
        """Install if needed, then start Kafka and Restate; on failure stop what started."""
        if install:
            install_all(self.cache, progress)
        ensure_free(self.ports.by_purpose())
        progress(
            "ports: "
            + ", ".join(f"{purpose} {port}" for purpose, port in self.ports.by_purpose().items())
        )
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            progress(f"kafka: starting on {self.bootstrap_servers} (log {self.kafka.log_path})")
            started = time.monotonic()
            self.kafka.start(detached=detached)
            progress(f"kafka: ready in {time.monotonic() - started:.1f}s")
            progress(f"restate: starting, admin {self.admin_url} (log {self.restate.log_path})")
            started = time.monotonic()
            self.restate.start(detached=detached)
            progress(f"restate: ready in {time.monotonic() - started:.1f}s")
        except BaseException:
            self.stop()
            raise
        if detached:
            self._write_state()

    def stop(self) -> None:
        self.restate.stop()
        self.kafka.stop()

    def logs_tail(self, lines: int = 60) -> str:
        return "\n".join(f"--- {p} ---\n{tail(p, lines)}" for p in self.log_paths)

    def _write_state(self) -> None:
        assert self.kafka.process and self.restate.process
        recorded = {
            "kafka": RecordedProcess.of(self.kafka.process.pid),
            "restate": RecordedProcess.of(self.restate.process.pid),
        }
        state = {
            "ports": asdict(self.ports),
            "cache": str(self.cache) if self.cache else None,
            "pids": {name: r.pid for name, r in recorded.items()},
            # With the pid, names the process: `stack down` never signals a recycled pid.
            "start_times": {name: r.started for name, r in recorded.items()},
            "started_at": time.time(),
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- the detached stack (`stack up` / `stack status` / `stack down`) -------------------------


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((home / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    return state


def _recorded(state: dict[str, Any], name: str) -> RecordedProcess:
    # Files written before start times were recorded have none: the argv shape alone decides.
    return RecordedProcess(state["pids"][name], state.get("start_times", {}).get(name))


def _engines(home: Path, state: dict[str, Any]) -> LocalStack:
    """The recorded stack, to name its addresses and command lines: building it starts nothing."""
    cache = Path(state["cache"]) if state.get("cache") else None
    return LocalStack(home, StackPorts(**state["ports"]), cache)


def _ours(state: dict[str, Any], name: str, stack: LocalStack) -> bool:
    """The recorded engine still runs: same pid, same start time (pids are recycled), and
    the engine's command line (whole arguments, not the home path anywhere in it)."""
    engine = stack.kafka if name == "kafka" else stack.restate
    return _recorded(state, name).alive_as(engine.runs_as)


@dataclass
class EngineStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    address: str
    detail: str = ""


def stack_status(home: Path) -> list[EngineStatus]:
    state = _read_state(home)
    if state is None:
        raise StackError(f"no stack is running from {home} (no {STATE_FILE}); run `stack up`")
    stack = _engines(home, state)
    pids: dict[str, int] = state["pids"]
    kafka_up, restate_up = _ours(state, "kafka", stack), _ours(state, "restate", stack)
    kafka_ok, kafka_detail = False, ""
    if kafka_up:
        try:
            poll(
                TopicAdmin(stack.bootstrap_servers).broker_count,
                what=f"Kafka at {stack.bootstrap_servers} to list its brokers",
                timeout=5.0,
                retry_on=(KafkaUnavailableError,),
            )
            kafka_ok = True
        except PollTimeout as exc:
            kafka_detail = str(exc)
    restate_ok, restate_detail = False, ""
    if restate_up:
        try:
            restate_ok = httpx.get(f"{stack.admin_url}/health", timeout=3.0).status_code == 200
        except httpx.HTTPError as exc:
            restate_detail = str(exc)
    return [
        EngineStatus(
            "kafka", pids["kafka"], kafka_up, kafka_ok, stack.bootstrap_servers, kafka_detail
        ),
        EngineStatus(
            "restate",
            pids["restate"],
            restate_up,
            restate_ok,
            f"admin {stack.admin_url}, ingress {stack.ingress_url}",
            restate_detail,
        ),
    ]


def stack_running(home: Path) -> bool:
    """Whether an engine recorded by `stack up` in `home` is still alive (no health probes)."""
    state = _read_state(home)
    if state is None:
        return False
    stack = _engines(home, state)
    return any(_ours(state, name, stack) for name in state["pids"])


def stack_down(home: Path, progress: Progress = print) -> None:
    state = _read_state(home)
    if state is None:
        progress(f"no stack recorded in {home}: nothing to stop")
        return
    stack = _engines(home, state)
    refused: list[str] = []
    # Restate first: it consumes from Kafka and would log errors while Kafka goes away.
    for name in ("restate", "kafka"):
        pid = state["pids"][name]
        if not _ours(state, name, stack):
            progress(f"{name}: not running (pid {pid} is not the {name} `stack up` started)")
            continue
        progress(f"{name}: stopping (pid {pid})")
        try:
            stop_group(pid, timeout=30.0)
        except SignalRefusedError as exc:
            refused.append(f"{name} (pid {pid}): {exc}")
    if refused:
        # Kept: the engines still run, and a later `stack down` (as their user) needs it.
        raise StackError(f"could not stop {'; '.join(refused)}; {home / STATE_FILE} is kept")
    (home / STATE_FILE).unlink()

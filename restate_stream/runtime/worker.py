"""A worker: a Restate app (`module:attribute`) served by hypercorn in a child process.

Restate dials deployments with prior-knowledge HTTP/2; hypercorn accepts h2c on a plain
port. The child runs in its own process group and dies with its owner.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hypercorn.run import run

from restate_stream._util.ports import LOOPBACK, ensure_free, free_ports, wait_until_listening
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.errors import RestateStreamError
from restate_stream.runtime._asgi import APP_ENV, BINDINGS_ENV, IDENTITY_KEYS_ENV, split_keys
from restate_stream.runtime.serving import hypercorn_config


class WorkerStartError(RestateStreamError, RuntimeError):
    pass


class WorkerProcess:
    def __init__(
        self,
        app: str,
        log_path: Path,
        *,
        port: int | None = None,
        processes: int = 1,
        cwd: Path | None = None,
        bindings: Path | None = None,
        env: Mapping[str, str] | None = None,
        identity_keys: list[str] | None = None,
    ) -> None:
        self.app = app
        self.bindings = bindings
        self.identity_keys = list(identity_keys or [])
        self.env = dict(env or {})
        self.log_path = log_path
        self.port = port if port is not None else free_ports(1)[0]
        self.processes = processes
        self.cwd = cwd
        self.process: ManagedProcess | None = None

    @property
    def uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> None:
        ensure_free({f"worker for {self.app}": self.port})
        self.process = ManagedProcess(
            "worker",
            [
                sys.executable,
                "-m",
                "restate_stream.runtime.worker",
                self.app,
                "--port",
                str(self.port),
                "--processes",
                str(self.processes),
                *(["--bindings", str(self.bindings)] if self.bindings else []),
                *(["--identity-keys", ",".join(self.identity_keys)] if self.identity_keys else []),
            ],
            self.log_path,
            cwd=self.cwd,
            env=self.env,
        )
        self.process.start()
        if not wait_until_listening(self.port, timeout=timeout, alive=self.process.running):
            self.process.stop()
            raise WorkerStartError(
                f"the worker serving {self.app} did not listen on {self.uri}; "
                f"last lines of {self.log_path}:\n{tail(self.log_path)}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)


def serve_forever(
    app: str,
    host: str,
    port: int,
    processes: int,
    identity_keys: list[str] | None = None,
    bindings: Path | None = None,
) -> int:
    """Serve in the foreground until SIGTERM/SIGINT (hypercorn shuts down gracefully); exits
    non-zero when a serving process dies on its own."""
    os.environ[APP_ENV] = app
    os.environ[IDENTITY_KEYS_ENV] = ",".join(identity_keys or [])
    os.environ[BINDINGS_ENV] = str(bindings.resolve()) if bindings else ""
    config = hypercorn_config(host, port)
    config.application_path = "restate_stream.runtime._asgi:app"
    config.workers = processes
    stopping = threading.Event()
    with _noting_shutdown_signals(stopping):
        code = run(config)
    if not stopping.is_set():
        # hypercorn stops every serving process when one dies, yet reports 0 when the dead one
        # was the last it held: exit non-zero so a supervisor restarts the worker.
        raise SystemExit(
            f"worker for {app}: a serving process exited unexpectedly (hypercorn status {code})"
        )
    return code


@contextmanager
def _noting_shutdown_signals(stopping: threading.Event) -> Iterator[None]:
    """Set `stopping` when SIGTERM/SIGINT arrives, around the handlers hypercorn installs."""
    install = signal.signal

    def noting(signum: int, handler: Any) -> Any:
        if signum in (signal.SIGTERM, signal.SIGINT) and callable(handler):

            def shutdown(number: int, frame: FrameType | None) -> None:
                stopping.set()
                handler(number, frame)

            return install(signum, shutdown)
        return install(signum, handler)

    signal.signal = noting  # type: ignore[assignment]  # restored below
    try:
        yield
    finally:
        signal.signal = install


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m restate_stream.runtime.worker")
    parser.add_argument("app", help="the Restate app as 'package.module:attribute'")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--bindings", type=Path, help="wrap the handlers this file binds")
    parser.add_argument("--identity-keys", default="", help="comma-separated publickeyv1_...")
    args = parser.parse_args()
    keys = split_keys(args.identity_keys)
    serve_forever(args.app, args.host, args.port, args.processes, keys, bindings=args.bindings)


if __name__ == "__main__":
    _main()

"""A worker: a Restate app (`module:attribute`) served by granian or hypercorn.

Restate dials deployments with prior-knowledge HTTP/2; both servers accept h2c on a plain
port (serving.py says which is the default and why). WorkerProcess runs the worker as a
child in its own process group that dies with its owner.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hypercorn.run import run

from restate_stream._util.ports import (
    LOOPBACK,
    ensure_free,
    free_ports,
    is_loopback,
    wait_until_listening,
)
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.errors import WorkerError
from restate_stream.runtime._asgi import (
    APP_ENV,
    BINDINGS_ENV,
    IDENTITY_KEYS_ENV,
    LOG_FORMAT_ENV,
    METRICS_ENV,
    SERVER_ENV,
    WORKER_PID_ENV,
    split_keys,
)
from restate_stream.runtime.logs import LOG_FORMATS
from restate_stream.runtime.serving import (
    DEFAULT_SERVER,
    GRACEFUL_SECONDS,
    SERVERS,
    ServerName,
    granian_server,
    hypercorn_config,
)

ASGI_TARGET = "restate_stream.runtime._asgi:app"


class WorkerStartError(WorkerError, RuntimeError):
    pass


class UnsignedExposureError(WorkerStartError):
    pass


def unsigned_exposure(
    host: str, identity_keys: list[str], *, insecure: bool, bindings: Path | None
) -> str | None:
    """Refuse to serve handlers off loopback without Restate's request signatures: anyone who
    reaches the port could invoke any handler, reading and changing every object's state.
    Returns the warning to say when `insecure` allows it anyway; None when there is none."""
    if is_loopback(host) or identity_keys:
        return None
    where = f"{bindings}: " if bindings else ""
    if insecure:
        return (
            f"warning: --insecure: the worker listens on {host} and checks no request "
            "signature; anything that reaches its port can invoke every handler "
            "(only a NetworkPolicy or firewall stands in the way)"
        )
    raise UnsignedExposureError(
        f"the worker would listen on {host}, but {where}worker.identity_keys is empty, so "
        "anything that reaches its port could invoke every handler. Add Restate's public key, "
        'e.g. `worker: {identity_keys: ["${RESTATE_IDENTITY_KEY}"]}` (publickeyv1_...), and '
        "give Restate the private key (worker.invoker.request-identity-private-key-pem-file "
        "in its config, RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE); or "
        "pass --insecure if only Restate can reach this address (docs/security.md)"
    )


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
        server: ServerName = DEFAULT_SERVER,
        metrics_port: int | None = None,
        log_format: str = "text",
    ) -> None:
        self.app = app
        self.log_format = log_format
        self.server = server
        self.metrics_port = metrics_port
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
                "--server",
                self.server,
                *(["--bindings", str(self.bindings)] if self.bindings else []),
                *(["--identity-keys", ",".join(self.identity_keys)] if self.identity_keys else []),
                *(["--metrics-port", str(self.metrics_port)] if self.metrics_port else []),
                "--log-format",
                self.log_format,
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
    server: ServerName = DEFAULT_SERVER,
    metrics_port: int | None = None,
    log_format: str = "text",
    metrics_host: str = LOOPBACK,
) -> int:
    """Serve in the foreground until SIGTERM/SIGINT (in-flight invocations end first); exits
    non-zero when a serving process dies on its own, so a supervisor restarts the worker.
    With `metrics_port`, this process serves the serving processes' metrics, summed, on
    `metrics_host` (loopback unless asked: they name bindings and topics)."""
    os.environ[APP_ENV] = app
    os.environ[IDENTITY_KEYS_ENV] = ",".join(identity_keys or [])
    os.environ[BINDINGS_ENV] = str(bindings.resolve()) if bindings else ""
    os.environ[LOG_FORMAT_ENV] = log_format
    os.environ[SERVER_ENV] = server
    os.environ[WORKER_PID_ENV] = str(os.getpid())
    with _metrics_endpoint(metrics_host, metrics_port):
        if server == "granian":
            stopped, code = _serve_granian(host, port, processes)
        else:
            stopped, code = _serve_hypercorn(host, port, processes)
    if not stopped:
        raise SystemExit(
            f"worker for {app}: a serving process exited unexpectedly ({server} status {code})"
        )
    return 0


@contextmanager
def _metrics_endpoint(host: str, port: int | None) -> Iterator[None]:
    """/metrics on `host`:`port`, summing the serving processes' files; they record into
    them when METRICS_ENV is set (runtime/_asgi.py)."""
    if port is None:
        os.environ.pop(METRICS_ENV, None)
        yield
        return
    from prometheus_client import start_http_server

    from restate_stream.telemetry.metrics import metrics_registry, prepare_metrics_dir

    if host == LOOPBACK:
        ensure_free({"worker metrics": port})
    directory = prepare_metrics_dir(Path(tempfile.mkdtemp(prefix="restate-stream-metrics-")))
    os.environ[METRICS_ENV] = "1"
    server, thread = start_http_server(port, addr=host, registry=metrics_registry(directory))
    print(f"worker: metrics at http://{host}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        server.shutdown()
        thread.join(5)
        shutil.rmtree(directory, ignore_errors=True)


def _serve_granian(host: str, port: int, processes: int) -> tuple[bool, int]:
    """(stopped by a signal, granian's status)."""
    # Spawned serving processes import the app afresh; forking would copy this process's
    # threads' state (the CLI registers the deployment from a thread) and its imports.
    multiprocessing.set_start_method("spawn", force=True)
    server = granian_server(ASGI_TARGET, host, port, processes)
    stopping = threading.Event()
    try:
        with _noting_shutdown_signals(stopping):
            server.serve()
    except SystemExit as exc:  # granian exits 1 when a serving process died on its own
        return stopping.is_set(), exc.code if isinstance(exc.code, int) else 1
    return stopping.is_set(), 0


def _serve_hypercorn(host: str, port: int, processes: int) -> tuple[bool, int]:
    """(stopped by a signal, hypercorn's status)."""
    config = hypercorn_config(host, port)
    config.application_path = ASGI_TARGET
    config.workers = processes
    config.worker_class = "uvloop"
    stopping = threading.Event()
    with _noting_shutdown_signals(stopping):
        code = run(config)
    # hypercorn stops every serving process when one dies, yet reports 0 when the dead one
    # was the last it held: only a signal counts as a requested stop.
    return stopping.is_set(), code


@contextmanager
def _noting_shutdown_signals(stopping: threading.Event) -> Iterator[None]:
    """Set `stopping` (and say so) when SIGTERM/SIGINT arrives, around the handlers the
    server installs."""
    install = signal.signal

    def noting(signum: int, handler: Any) -> Any:
        if signum in (signal.SIGTERM, signal.SIGINT) and callable(handler):

            def shutdown(number: int, frame: FrameType | None) -> None:
                if not stopping.is_set():
                    name = signal.Signals(number).name
                    print(
                        f"worker: stopping on {name}; in-flight invocations get up to "
                        f"{GRACEFUL_SECONDS}s",
                        file=sys.stderr,
                        flush=True,
                    )
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
    parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER)
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    parser.add_argument("--metrics-host", default=LOOPBACK, help="address /metrics listens on")
    parser.add_argument(
        "--insecure", action="store_true", help="serve off loopback without identity keys"
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    args = parser.parse_args()
    keys = split_keys(args.identity_keys)
    try:
        warning = unsigned_exposure(args.host, keys, insecure=args.insecure, bindings=args.bindings)
    except UnsignedExposureError as exc:
        parser.exit(2, f"error: {exc}\n")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    serve_forever(
        args.app,
        args.host,
        args.port,
        args.processes,
        keys,
        bindings=args.bindings,
        server=args.server,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        metrics_host=args.metrics_host,
    )


if __name__ == "__main__":
    _main()

"""`restate-stream metrics`: serve what `status` shows as Prometheus metrics."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from prometheus_client import start_http_server

from connectors import TopicAdmin
from restate_stream._util.ports import LOOPBACK, ensure_free
from restate_stream.bindings import load_checked
from restate_stream.cli import options
from restate_stream.cli.output import note, say
from restate_stream.telemetry.status_metrics import status_reader, status_registry

DEFAULT_PORT = 9465


@click.command(epilog=options.example("restate-stream metrics --port 9465"))
@options.bindings_file
@options.wait
@options.admin_url
@click.option("--host", default=LOOPBACK, show_default=True, help="address to listen on")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
def metrics(file: Path, wait: float, admin_url: str | None, host: str, port: int) -> int:
    """Serve lag, stuck keys and dead letters per binding at /metrics (Prometheus).

    Every scrape reads them fresh, as `status` does. The worker's own metrics (records by
    outcome, handler time, publishes) are on the worker's metrics port.
    """
    spec = options.pointed_at(load_checked(file, check_app=False), admin_url)
    if host == LOOPBACK:
        ensure_free({"metrics": port})
    else:
        note(f"listening on {host}: anyone who reaches it can read the bindings' metrics")
    server, thread = start_http_server(
        port, addr=host, registry=status_registry(status_reader(spec, TopicAdmin, wait))
    )
    say(f"metrics for {len(spec.bindings)} bindings of {file} at http://{host}:{port}/metrics")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(5)
    return 0

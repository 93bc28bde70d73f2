"""`restate-stream worker` (serve the bindings file's app) and `dev` (engines + worker + apply)."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click

from restate_stream._util.ports import LOOPBACK, free_ports, wait_until_listening
from restate_stream.bindings import BindingsFile, WorkerSpec, load_checked
from restate_stream.cli import options
from restate_stream.cli.bindings import admin_client, apply_file
from restate_stream.cli.output import note, say
from restate_stream.errors import RestateStreamError
from restate_stream.runtime._sdk import identity_verifier
from restate_stream.runtime.logs import LOG_FORMATS
from restate_stream.runtime.serving import DEFAULT_SERVER, SERVERS, ServerName
from restate_stream.runtime.worker import (
    WorkerProcess,
    WorkerStartError,
    serve_forever,
    unsigned_exposure,
)
from restate_stream.stack import LocalStack, StackError, StackPorts
from restate_stream.ui.server import BackgroundDashboard, url


def _worker_port(uri: str) -> int:
    parsed = urlparse(uri)
    return parsed.port or (443 if parsed.scheme == "https" else 80)


@click.command(
    epilog=options.example(
        "restate-stream worker", "restate-stream worker --apply --processes 2 --metrics-port 9464"
    )
)
@options.bindings_file
@options.wait
@options.admin_url
@click.option("--port", type=int, help="default: the port of worker.uri")
@click.option("--host", help="bind address (default: from worker.uri)")
@click.option("--processes", type=int, help="default: worker.processes")
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    help=f"the h2c server (default: worker.server, else {DEFAULT_SERVER})",
)
@click.option(
    "--metrics-port",
    type=int,
    help="serve Prometheus metrics at /metrics on this port (default: worker.metrics_port)",
)
@click.option(
    "--metrics-host",
    help="address /metrics listens on (default: worker.metrics_host, else 127.0.0.1)",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    help="text (for people) or json (one object per line); default: worker.log_format",
)
@click.option("--apply", "apply_bindings", is_flag=True, help="apply the bindings once serving")
@click.option(
    "--insecure",
    is_flag=True,
    help="listen off loopback without worker.identity_keys (only if nothing but Restate can "
    "reach the port)",
)
def worker(
    file: Path,
    wait: float,
    admin_url: str | None,
    port: int | None,
    host: str | None,
    processes: int | None,
    server: ServerName | None,
    metrics_port: int | None,
    metrics_host: str | None,
    log_format: str | None,
    apply_bindings: bool,
    insecure: bool,
) -> int:
    """Serve the bindings file's app."""
    # --admin-url is where the deployment is registered (and --apply applies); the serving
    # processes read the file for their bindings only, never its admin URL.
    spec = options.pointed_at(load_checked(file), admin_url)
    if spec.worker is None:
        raise StackError(f"{file} declares no worker: add `worker: {{app: module:attr}}`")
    app = spec.worker
    port = port or _worker_port(app.uri)
    host = host or (
        LOOPBACK if urlparse(app.uri).hostname in (LOOPBACK, "localhost") else "0.0.0.0"
    )
    identity_verifier(app.identity_keys)  # a key the SDK cannot read fails here, named
    warning = unsigned_exposure(host, app.identity_keys, insecure=insecure, bindings=file)
    if warning:
        note((warning, "bold yellow"))
    bound_port, bound_host = port, host

    def register_when_listening() -> None:
        probe = LOOPBACK if bound_host == "0.0.0.0" else bound_host
        if not wait_until_listening(bound_port, probe, timeout=120):
            note(f"worker: not listening on {bound_host}:{bound_port} after 120s; not registered")
            return

        async def register() -> None:
            async with admin_client(spec, wait) as admin:
                deployment = await admin.register_deployment(app.uri)
                say(
                    f"worker: registered {app.uri} as {deployment.id} "
                    f"({', '.join(deployment.services)})"
                )
            if apply_bindings:
                await apply_file(spec, wait=wait)

        try:
            asyncio.run(register())
        except RestateStreamError as exc:
            note(("worker: registration failed (still serving): ", "red"), str(exc))

    threading.Thread(target=register_when_listening, daemon=True).start()
    count = processes or app.processes
    chosen = server or app.server or DEFAULT_SERVER
    say(f"worker: serving {app.app} on {host}:{port} ({count} process(es), {chosen})")
    return serve_forever(
        app.app,
        host,
        port,
        count,
        app.identity_keys,
        bindings=file,
        server=chosen,
        metrics_port=metrics_port or app.metrics_port,
        log_format=log_format or app.log_format,
        metrics_host=metrics_host or app.metrics_host or LOOPBACK,
    )


def _follow(paths: dict[str, Path], offsets: dict[str, int], only_problems: set[str]) -> None:
    """Print what the logs gained since the last call, each line labelled with its engine."""
    for label, path in paths.items():
        try:
            with path.open("rb") as f:
                f.seek(offsets.get(label, 0))
                data = f.read()
                offsets[label] = f.tell()
        except FileNotFoundError:
            continue
        for line in data.decode(errors="replace").splitlines():
            if label in only_problems and not any(w in line for w in ("WARN", "ERROR")):
                continue
            if line.strip():
                style = "red" if "ERROR" in line else ("yellow" if "WARN" in line else "")
                say((f"{label:7} | ", "dim"), (line, style))


def _loopback_port(address: str) -> int | None:
    """The port of a loopback `host:port` or URL; None for another host."""
    parsed = urlparse(address if "://" in address else f"//{address}")
    if parsed.hostname in (LOOPBACK, "localhost") and parsed.port:
        return parsed.port
    return None


def _dashboard(file: Path, wait: float) -> BackgroundDashboard:
    """`restate-stream ui` for the file, on a free loopback port (dev's panel)."""
    from restate_stream.ui import LiveSource, create_app
    from restate_stream.ui.guard import Guard, allowed_hosts

    port = free_ports(1)[0]
    app = create_app(LiveSource(file, wait=wait), Guard(allowed_hosts(LOOPBACK, port)))
    dashboard = BackgroundDashboard(app, LOOPBACK, port)
    dashboard.start()
    return dashboard


def dev_ports(spec: BindingsFile, file: Path, flags: dict[str, int | None]) -> StackPorts:
    """The ports the file points at (dev runs the engines the file names), flags filling in."""
    from_file: dict[str, tuple[int | None, str]] = {
        "admin": (_loopback_port(spec.restate.admin_url), "restate.admin_url"),
        "ingress": (_loopback_port(spec.restate.ingress_url), "restate.ingress_url"),
    }
    if len(spec.clusters) == 1:
        ((name, cluster),) = spec.clusters.items()
        servers = cluster.properties.get("bootstrap.servers", "").split(",")[0]
        from_file["kafka"] = (_loopback_port(servers), f"kafka.clusters.{name}.bootstrap.servers")
    defaults = StackPorts()
    chosen: dict[str, Any] = {}
    for field, flag in flags.items():
        file_port, where = from_file.get(field, (None, ""))
        # apply talks to the file's admin URL and Kafka: those must be the engines dev runs.
        must_agree = field in ("admin", "kafka")
        if must_agree and flag is not None and file_port is not None and flag != file_port:
            raise StackError(
                f"--{field.replace('_', '-')}-port {flag}, but {file} ({where}) says "
                f"{file_port}: dev runs the engines where the file points"
            )
        chosen[field] = flag or file_port or getattr(defaults, field)
    return StackPorts(**chosen)


def dev_worker(worker: WorkerSpec, file: Path, home: Path) -> WorkerProcess:
    """The worker dev runs: as the file's `worker:` says, its log in `home`."""
    return WorkerProcess(
        worker.app,
        home / "worker.log",
        port=_worker_port(worker.uri),
        processes=worker.processes,
        cwd=Path.cwd(),
        bindings=file.resolve(),
        identity_keys=worker.identity_keys,
        server=worker.server or DEFAULT_SERVER,
        # dev always shows its metrics: the file's port, else a free one.
        metrics_port=worker.metrics_port or free_ports(1)[0],
        log_format=worker.log_format,
    )


@click.command(
    epilog=options.example(
        "restate-stream dev", "restate-stream dev -f bindings.yaml --home /tmp/dev"
    )
)
@options.bindings_file
@options.wait
@options.home
@options.ports(from_file=True)
def dev(file: Path, wait: float, home: Path, ports: dict[str, int | None]) -> int:
    """Engines + worker + bindings, logs streamed; Ctrl-C stops everything."""
    spec = load_checked(file)
    if spec.worker is None:
        raise StackError(f"{file} declares no worker: `dev` needs `worker: {{app: ...}}`")
    stack = LocalStack(home, dev_ports(spec, file, ports))
    stack.start(progress=say)
    process = dev_worker(spec.worker, file, home)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    dashboard: BackgroundDashboard | None = None
    try:
        process.start()
        say(f"worker: serving {spec.worker.app} at {process.uri}")
        say(f"worker: metrics at http://{LOOPBACK}:{process.metrics_port}/metrics")
        code = asyncio.run(apply_file(spec, wait=wait))
        if code != 0:
            return code
        dashboard = _dashboard(file, wait)
        say(f"dev: dashboard at {url(LOOPBACK, dashboard.port)}")
        say(("dev: running", "bold green"), "; Ctrl-C stops the worker and the engines")
        logs = {
            "worker": process.log_path,
            "restate": stack.restate.log_path,
            "kafka": stack.kafka.log_path,
        }
        offsets = {
            label: (p.stat().st_size if p.exists() else 0)
            for label, p in logs.items()
            if label != "worker"
        }
        while not stopped.wait(0.5):
            _follow(logs, offsets, only_problems={"kafka", "restate"})
            if not (process.process and process.process.running()):
                raise WorkerStartError(f"the worker exited; see {process.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        say("dev: stopping")
        if dashboard is not None:
            dashboard.stop()
        process.stop()
        stack.stop()
        say("dev: stopped (worker, Restate and Kafka)")
    return 0

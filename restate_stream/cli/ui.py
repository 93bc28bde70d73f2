"""`restate-stream ui`: the local web dashboard for a bindings file (restate_stream.ui)."""

from __future__ import annotations

from pathlib import Path

import click

from restate_stream.bindings import load_checked
from restate_stream.cli import options
from restate_stream.cli.output import note, say
from restate_stream.ui import LiveSource, create_app
from restate_stream.ui.guard import Guard, allowed_hosts, is_loopback
from restate_stream.ui.server import run, url


@click.command("ui", epilog=options.example("restate-stream ui --port 8765"))
@options.bindings_file
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to listen on; anything but loopback exposes the dashboard (no login)",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=5.0,
    show_default=True,
    help="seconds between two reads of the status (the charts' resolution)",
)
@options.wait
def ui(file: Path, port: int, host: str, interval: float, wait: float) -> int:
    """A local web dashboard: lag, stuck keys and dead letters; redrive, pause and resume."""
    load_checked(file, check_app=False)  # a bad file fails here, not on the first page
    if is_loopback(host):
        note(
            f"listening on {host} only (loopback: this machine alone reaches it); "
            "--host exposes it, without a login"
        )
    else:
        warning = (
            f"warning: --host {host} exposes the dashboard to every machine that reaches this "
            "one; it has no login, and it can redrive dead letters and pause bindings"
        )
        note((warning, "bold yellow"))
    guard = Guard(allowed_hosts(host, port))
    app = create_app(LiveSource(file, wait=wait), guard, interval=interval)
    say(f"dashboard for {file} on {url(host, port)} (Ctrl-C stops it)")
    run(app, host, port)
    return 0

"""`restate-stream ui`: the local web dashboard for a bindings file (restate_stream.ui)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from restate_stream._util.ports import is_loopback
from restate_stream.bindings import load_checked
from restate_stream.cli import options
from restate_stream.cli.output import note, say
from restate_stream.ui import LiveSource, create_app
from restate_stream.ui.access import TOKEN_ENV, read_access_token, require_access_control
from restate_stream.ui.guard import Guard, allowed_hosts
from restate_stream.ui.server import run, url


@click.command("ui", epilog=options.example("restate-stream ui --port 8765"))
@options.bindings_file
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to listen on; anything but loopback needs --allowed-host and a token",
)
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    metavar="NAME[:PORT]",
    help="a host name (or address) browsers reach the dashboard by; others are refused "
    "(DNS rebinding). Repeatable",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"file holding the access token browsers must give (default: ${TOKEN_ENV})",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=5.0,
    show_default=True,
    help="seconds between two reads of the status (the charts' resolution)",
)
@options.wait
def ui(
    file: Path,
    port: int,
    host: str,
    allowed: tuple[str, ...],
    token_file: Path | None,
    interval: float,
    wait: float,
) -> int:
    """A local web dashboard: lag, stuck keys and dead letters; redrive, pause and resume."""
    load_checked(file, check_app=False)  # a bad file fails here, not on the first page
    token = read_access_token(token_file, os.environ)
    require_access_control(host, allowed, token)
    if is_loopback(host):
        note(
            f"listening on {host} only (loopback: this machine alone reaches it); "
            "--host exposes it, with --allowed-host and an access token"
        )
    else:
        note(
            (f"listening on {host}: ", "bold yellow"),
            f"answers only as {', '.join(allowed)}, to browsers that give the access token "
            "(any user name, the token as password); without TLS in front (a reverse proxy) "
            "the token crosses the network in clear",
        )
    guard = Guard(allowed_hosts(host, port, allowed), access_token=token)
    app = create_app(LiveSource(file, wait=wait), guard, interval=interval)
    say(f"dashboard for {file} on {url(host, port)} (Ctrl-C stops it)")
    run(app, host, port)
    return 0

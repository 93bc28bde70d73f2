"""`restate-stream stack install|up|status|down`: the local Kafka broker and Restate server."""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict
from pathlib import Path

import click
from rich.text import Text

from restate_stream.cli import options
from restate_stream.cli.output import print_json, say, show, table
from restate_stream.stack import LocalStack, StackError, StackPorts, install_all
from restate_stream.stack.local import EngineStatus, stack_down, stack_running, stack_status


@click.group(epilog=options.example("restate-stream stack up", "restate-stream stack down"))
def stack() -> None:
    """Install, start and stop the local engines."""


@stack.command(epilog=options.example("restate-stream stack install"))
def install() -> int:
    """Install the Restate server (npm) and Kafka broker (Maven)."""
    install_all(progress=say)
    return 0


@stack.command(
    epilog=options.example(
        "restate-stream stack up",
        "restate-stream stack up --home /tmp/stack --kafka-port 19092 --admin-port 19070",
    )
)
@options.home
@options.ports()
@click.option("--foreground", is_flag=True, help="stay attached; Ctrl-C stops the engines")
def up(home: Path, ports: dict[str, int], foreground: bool) -> int:
    """Start Kafka and Restate."""
    if stack_running(home):
        raise StackError(f"a stack is already running from {home}: `stack status` or `stack down`")
    local = LocalStack(home, StackPorts(**ports))
    local.start(detached=not foreground, progress=say)
    say("Kafka bootstrap servers: ", (local.bootstrap_servers, "bold"))
    say(f"Restate admin: {local.admin_url}   ingress: {local.ingress_url}")
    if not foreground:
        say("running in the background: `restate-stream stack down` stops it")
        return 0
    say("running in the foreground: Ctrl-C stops it")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0):
            if not (local.kafka.process and local.kafka.process.running()):
                raise StackError(f"the Kafka broker exited; see {local.kafka.log_path}")
            if not (local.restate.process and local.restate.process.running()):
                raise StackError(f"the Restate server exited; see {local.restate.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping the stack")
        local.stop()
    return 0


def _state(engine: EngineStatus) -> Text:
    if engine.healthy:
        return Text("healthy", "green")
    if engine.running:
        return Text("running, not answering", "yellow")
    return Text("down", "red")


@stack.command(epilog=options.example("restate-stream stack status --json"))
@options.home
@options.as_json
def status(home: Path, as_json: bool) -> int:
    """Are both engines healthy? Exit status 1 when not."""
    engines = stack_status(home)
    if as_json:
        print_json([asdict(e) for e in engines])
    else:
        grid = table("ENGINE", "STATE", "PID", "ADDRESS", "DETAIL")
        for e in engines:
            grid.add_row(e.name, _state(e), str(e.pid), e.address, e.detail)
        show(grid)
    return 0 if all(e.healthy for e in engines) else 1


@stack.command(epilog=options.example("restate-stream stack down"))
@options.home
def down(home: Path) -> int:
    """Stop the engines."""
    stack_down(home, progress=say)
    return 0

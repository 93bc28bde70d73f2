"""The `restate-stream` command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from restate_stream.stack import (
    LocalStack,
    PortInUseError,
    StackError,
    StackInstallError,
    StackPorts,
    default_home,
    install_all,
)
from restate_stream.stack.kafka import KafkaStartError
from restate_stream.stack.local import stack_down, stack_status
from restate_stream.stack.restate import RestateStartError

# Errors that carry a complete message for people: printed without a traceback.
_USER_ERRORS = (
    StackInstallError,
    PortInUseError,
    StackError,
    KafkaStartError,
    RestateStartError,
)


def _say(line: str) -> None:
    print(line, flush=True)


def _ports(args: argparse.Namespace) -> StackPorts:
    return StackPorts(
        kafka=args.kafka_port,
        kafka_controller=args.kafka_controller_port,
        ingress=args.ingress_port,
        admin=args.admin_port,
        fabric=args.fabric_port,
    )


def cmd_stack_install(args: argparse.Namespace) -> int:
    install_all(progress=_say)
    return 0


def cmd_stack_up(args: argparse.Namespace) -> int:
    home: Path = args.home
    if (home / "stack.json").exists() and any(s.running for s in stack_status(home)):
        raise StackError(f"a stack is already running from {home}: `stack status` or `stack down`")
    stack = LocalStack(home, _ports(args))
    stack.start(detached=not args.foreground, progress=_say)
    _say(f"Kafka bootstrap servers: {stack.bootstrap_servers}")
    _say(f"Restate admin: {stack.admin_url}   ingress: {stack.ingress_url}")
    if not args.foreground:
        _say("running in the background: `restate-stream stack down` stops it")
        return 0
    _say("running in the foreground: Ctrl-C stops it")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0):
            if not (stack.kafka.process and stack.kafka.process.running()):
                raise StackError(f"the Kafka broker exited; see {stack.kafka.log_path}")
            if not (stack.restate.process and stack.restate.process.running()):
                raise StackError(f"the Restate server exited; see {stack.restate.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        _say("stopping the stack")
        stack.stop()
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    statuses = stack_status(args.home)
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        for s in statuses:
            state = "healthy" if s.healthy else ("running, not answering" if s.running else "down")
            detail = f"  ({s.detail})" if s.detail else ""
            _say(f"{s.name:8} {state:24} pid {s.pid}  {s.address}{detail}")
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_stack_down(args: argparse.Namespace) -> int:
    stack_down(args.home, progress=_say)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restate-stream",
        description="Kafka-centric event processing on Restate.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = commands.add_parser("stack", help="install, start and stop the local engines")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")

    def with_home(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--home",
            type=Path,
            default=default_home(),
            help="where the stack keeps its data, logs and pids (default: %(default)s)",
        )
        return p

    stack_commands.add_parser(
        "install", help="install the Restate server (npm) and Kafka broker (Maven)"
    ).set_defaults(func=cmd_stack_install)

    up = with_home(stack_commands.add_parser("up", help="start Kafka and Restate"))
    defaults = StackPorts()
    up.add_argument("--kafka-port", type=int, default=defaults.kafka)
    up.add_argument("--kafka-controller-port", type=int, default=defaults.kafka_controller)
    up.add_argument("--ingress-port", type=int, default=defaults.ingress)
    up.add_argument("--admin-port", type=int, default=defaults.admin)
    up.add_argument("--fabric-port", type=int, default=defaults.fabric)
    up.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C stops the engines"
    )
    up.set_defaults(func=cmd_stack_up)

    status = with_home(stack_commands.add_parser("status", help="are both engines healthy?"))
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_stack_status)

    with_home(stack_commands.add_parser("down", help="stop the engines")).set_defaults(
        func=cmd_stack_down
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except _USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

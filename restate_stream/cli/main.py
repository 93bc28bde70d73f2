"""The `restate-stream` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import threading
from collections.abc import Sized
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from connectors import TopicAdmin
from connectors.consume import TopicNotFoundError, TopicUnreadableError
from restate_stream import dlq
from restate_stream._util.ports import LOOPBACK, wait_until_listening
from restate_stream.bindings import (
    AppImportError,
    BindingsError,
    BindingsFile,
    Problem,
    check_against_app,
    import_app,
    load_bindings,
)
from restate_stream.bindings.edit import set_paused
from restate_stream.bindings.model import AVRO_WIRES, FORMATS
from restate_stream.control.admin import AdminApiError, AdminClient, AdminUnavailableError
from restate_stream.control.apply import apply_plan
from restate_stream.control.blocked import UnblockError, UnblockReport, unblock
from restate_stream.control.plan import Plan, compute_plan, fetch_live
from restate_stream.control.status import binding_statuses, render
from restate_stream.runtime.worker import WorkerProcess, WorkerStartError, serve_forever
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
from restate_stream.stack.local import stack_down, stack_running, stack_status
from restate_stream.stack.restate import RestateStartError
from restate_stream.topics import publish as publish_cli
from restate_stream.topics import tail as tail_cli

# Errors that carry a complete message for people: printed without a traceback.
_USER_ERRORS = (
    BindingsError,
    AppImportError,
    AdminApiError,
    AdminUnavailableError,
    WorkerStartError,
    StackInstallError,
    PortInUseError,
    StackError,
    KafkaStartError,
    RestateStartError,
    publish_cli.PublishError,
    dlq.DlqError,
    TopicNotFoundError,
    TopicUnreadableError,
    UnblockError,
)


def _say(line: str) -> None:
    print(line, flush=True)


# StackPorts' fields, each with a --<field>-port flag.
_PORT_FIELDS = tuple(f.name for f in dataclasses.fields(StackPorts))


def _ports(args: argparse.Namespace) -> StackPorts:
    return StackPorts(**{field: getattr(args, f"{field}_port") for field in _PORT_FIELDS})


def _optional_spec(args: argparse.Namespace) -> BindingsFile | None:
    """With --bootstrap the bindings file is optional: it only lends a binding's format."""
    if args.bootstrap is None or args.bindings.exists():
        return load_checked(args.bindings, check_app=False)
    return None


def cmd_stack_install(args: argparse.Namespace) -> int:
    install_all(progress=_say)
    return 0


def cmd_stack_up(args: argparse.Namespace) -> int:
    home: Path = args.home
    if stack_running(home):
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


# --- bindings: validate, plan, apply, pause/resume, status -----------------------------------


def load_checked(path: Path, *, check_app: bool = True) -> BindingsFile:
    """The file's own checks, then (when it names a worker app) the bindings against the app."""
    spec = load_bindings(path)
    if check_app and spec.worker is not None:
        try:
            _, services = import_app(spec.worker.app)
        except AppImportError as exc:
            line, column = spec.worker.app_position
            raise BindingsError([Problem(str(path), line, column, "worker.app", str(exc))]) from exc
        check_against_app(spec, services)
    return spec


def _count(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_checked(args.file, check_app=not args.no_app)
    checked = "" if args.no_app or spec.worker is None else f", checked against {spec.worker.app}"
    _say(
        f"{args.file}: ok ({_count(spec.bindings, 'binding')}, "
        f"{_count(spec.clusters, 'Kafka cluster')}, {_count(spec.topics, 'topic')}{checked})"
    )
    return 0


async def _plan(spec: BindingsFile, admin: AdminClient, args: argparse.Namespace) -> Plan:
    live = await fetch_live(spec, admin)
    return compute_plan(
        spec,
        live,
        prune=getattr(args, "prune", False),
        refresh_clusters=getattr(args, "refresh_clusters", False),
    )


def _admin(spec: BindingsFile, args: argparse.Namespace) -> AdminClient:
    return AdminClient(spec.restate.admin_url, startup_timeout=args.wait)


def cmd_plan(args: argparse.Namespace) -> int:
    spec = load_checked(args.file)

    async def run() -> Plan:
        async with _admin(spec, args) as admin:
            return await _plan(spec, admin, args)

    _say(asyncio.run(run()).render())
    return 0


async def _apply(spec: BindingsFile, args: argparse.Namespace, only: str | None = None) -> int:
    async with _admin(spec, args) as admin:
        plan = await _plan(spec, admin, args)
        if only is not None:
            plan.changes = [c for c in plan.changes if getattr(c, "binding", None) == only]
        if plan.empty:
            _say("No changes: Restate and Kafka already match the file.")
            return 0
        report = await apply_plan(plan, spec, admin, progress=_say)
        applied = sum(o.status == "applied" for o in report.outcomes)
        _say(f"{applied} of {len(report.outcomes)} change(s) applied.")
        if not report.ok:
            print(report.render(), file=sys.stderr)
            return 1
        return 0


def cmd_apply(args: argparse.Namespace) -> int:
    return asyncio.run(_apply(load_checked(args.file), args))


def cmd_pause_resume(args: argparse.Namespace) -> int:
    paused = args.command == "pause"
    if set_paused(args.file, args.name, paused):
        _say(f"{args.file}: binding {args.name} now has paused: {str(paused).lower()}")
    return asyncio.run(_apply(load_checked(args.file), args, only=args.name))


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_checked(args.file, check_app=False)

    async def run() -> int:
        async with _admin(spec, args) as admin:
            statuses = await binding_statuses(spec, admin, TopicAdmin)
        if args.json:
            print(json.dumps([s.to_json() for s in statuses], indent=2, default=str))
        else:
            _say(render(statuses))
        return 0

    return asyncio.run(run())


def render_unblock(report: UnblockReport) -> str:
    lines = []
    for b in report.not_reached:
        lines.append(
            f"{b.topic} p{b.partition}@{b.offset}: the consumer had not reached it yet; "
            "nothing moved (run unblock again once status shows it blocked)"
        )
    if report.nothing_blocked:
        return f"{report.binding}: nothing blocked (group {report.group})"
    for b in report.blocked:
        where = (
            f"dead-lettered to {report.dead_letter_topic}"
            if report.dead_letter_topic
            else "DROPPED (--force-drop)"
        )
        key = f", key {b.key_bytes_hex}" if b.key_bytes_hex is not None else ""
        lines.append(f"{b.topic} p{b.partition}@{b.offset} ({b.reason}{key}): {where}")
    for partition, offset in sorted(report.offsets.items()):
        lines.append(f"group {report.group}: p{partition} now resumes at offset {offset}")
    if report.deleted_subscriptions:
        lines.append(f"subscription deleted: {', '.join(report.deleted_subscriptions)}")
    if report.created_subscriptions:
        lines.append(f"subscription recreated: {', '.join(report.created_subscriptions)}")
    elif report.deleted_subscriptions:
        lines.append("subscription not recreated (the binding is paused): resume continues")
    return "\n".join(lines)


def cmd_unblock(args: argparse.Namespace) -> int:
    spec = load_checked(args.file, check_app=False)

    async def run() -> UnblockReport:
        async with _admin(spec, args) as admin:
            return await unblock(spec, args.name, admin, force_drop=args.force_drop)

    _say(render_unblock(asyncio.run(run())))
    return 0


# --- worker and dev ---------------------------------------------------------------------------


def _worker_port(uri: str) -> int:
    parsed = urlparse(uri)
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def cmd_worker(args: argparse.Namespace) -> int:
    spec = load_checked(args.file)
    if spec.worker is None:
        raise StackError(f"{args.file} declares no worker: add `worker: {{app: module:attr}}`")
    worker = spec.worker
    port = args.port or _worker_port(worker.uri)
    host = args.host or (
        LOOPBACK if urlparse(worker.uri).hostname in (LOOPBACK, "localhost") else "0.0.0.0"
    )

    def register_when_listening() -> None:
        if not wait_until_listening(port, LOOPBACK if host == "0.0.0.0" else host, timeout=120):
            print(
                f"worker: not listening on {host}:{port} after 120s; not registered",
                file=sys.stderr,
            )
            return

        async def register() -> None:
            async with _admin(spec, args) as admin:
                deployment = await admin.register_deployment(worker.uri)
                _say(
                    f"worker: registered {worker.uri} as {deployment.id} "
                    f"({', '.join(deployment.services)})"
                )
            if args.apply:
                await _apply(spec, args)

        try:
            asyncio.run(register())
        except _USER_ERRORS as exc:
            print(f"worker: registration failed (still serving): {exc}", file=sys.stderr)

    threading.Thread(target=register_when_listening, daemon=True).start()
    processes = args.processes or worker.processes
    _say(f"worker: serving {worker.app} on {host}:{port} ({processes} process(es))")
    serve_forever(worker.app, host, port, processes, worker.identity_keys, bindings=args.file)
    return 0


def _follow(paths: dict[str, Path], offsets: dict[str, int], only_problems: set[str]) -> None:
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
                print(f"{label:7} | {line}", flush=True)


def _loopback_port(address: str) -> int | None:
    """The port of a loopback `host:port` or URL; None for another host."""
    parsed = urlparse(address if "://" in address else f"//{address}")
    if parsed.hostname in (LOOPBACK, "localhost") and parsed.port:
        return parsed.port
    return None


def _dev_ports(spec: BindingsFile, args: argparse.Namespace) -> StackPorts:
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
    chosen: dict[str, int] = {}
    for field in _PORT_FIELDS:
        flag: int | None = getattr(args, f"{field}_port")
        file_port, where = from_file.get(field, (None, ""))
        # apply talks to the file's admin URL and Kafka: those must be the engines dev runs.
        must_agree = field in ("admin", "kafka")
        if must_agree and flag is not None and file_port is not None and flag != file_port:
            raise StackError(
                f"--{field.replace('_', '-')}-port {flag}, but {args.file} ({where}) says "
                f"{file_port}: dev runs the engines where the file points"
            )
        chosen[field] = flag or file_port or getattr(defaults, field)
    return StackPorts(**chosen)


def cmd_dev(args: argparse.Namespace) -> int:
    spec = load_checked(args.file)
    if spec.worker is None:
        raise StackError(f"{args.file} declares no worker: `dev` needs `worker: {{app: ...}}`")
    stack = LocalStack(args.home, _dev_ports(spec, args))
    stack.start(progress=_say)
    worker = WorkerProcess(
        spec.worker.app,
        args.home / "worker.log",
        port=_worker_port(spec.worker.uri),
        cwd=Path.cwd(),
        bindings=args.file.resolve(),
        identity_keys=spec.worker.identity_keys,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        worker.start()
        _say(f"worker: serving {spec.worker.app} at {worker.uri}")
        code = asyncio.run(_apply(spec, args))
        if code != 0:
            return code
        _say("dev: running; Ctrl-C stops the worker and the engines")
        logs = {
            "worker": worker.log_path,
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
            if not (worker.process and worker.process.running()):
                raise WorkerStartError(f"the worker exited; see {worker.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        _say("dev: stopping")
        worker.stop()
        stack.stop()
        _say("dev: stopped (worker, Restate and Kafka)")
    return 0


# --- publish by hand, dead letters -------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    if args.key is not None and args.records is not None:
        message = "error: --key goes with --value; each line of --file has its own key"
        print(message, file=sys.stderr)
        return 2
    return publish_cli.publish(
        _optional_spec(args),
        args.topic,
        cluster=args.cluster,
        bootstrap=args.bootstrap,
        key=args.key,
        value=args.value,
        records_file=args.records,
        fmt=args.format,
        schema=args.schema,
        avro_wire=args.avro_wire,
        schema_id=args.schema_id,
        envelope=args.envelope,
    )


def cmd_tail(args: argparse.Namespace) -> int:
    target = publish_cli.resolve_target(
        _optional_spec(args), args.topic, args.cluster, args.bootstrap
    )
    count = tail_cli.tail(target, last=args.last, follow=args.follow, say=_say)
    if not args.follow:
        _say(f"{count} record(s) on {args.topic}")
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    spec = load_checked(args.file, check_app=False)
    if args.dlq_command == "list":
        return dlq.list_dead_letters(spec, args.name, limit=args.limit, as_json=args.json)
    return dlq.redrive(spec, args.name, dry_run=args.dry_run, timeout=args.timeout)


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return number


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

    def with_ports(
        p: argparse.ArgumentParser, *, from_file: bool = False
    ) -> argparse.ArgumentParser:
        # dev takes its ports from the bindings file unless a flag says otherwise.
        defaults = StackPorts()
        for field in _PORT_FIELDS:
            p.add_argument(
                f"--{field.replace('_', '-')}-port",
                type=int,
                default=None if from_file else getattr(defaults, field),
            )
        return p

    up = with_ports(with_home(stack_commands.add_parser("up", help="start Kafka and Restate")))
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

    def with_file(p: argparse.ArgumentParser, *, server: bool = True) -> argparse.ArgumentParser:
        p.add_argument(
            "-f",
            "--file",
            type=Path,
            default=Path("bindings.yaml"),
            help="the bindings file (default: %(default)s)",
        )
        if server:
            p.add_argument(
                "--wait",
                type=float,
                default=10.0,
                help="seconds to retry an unreachable Restate admin API (default: %(default)s)",
            )
        return p

    validate = with_file(
        commands.add_parser("validate", help="check the bindings file (no server needed)"),
        server=False,
    )
    validate.add_argument("--no-app", action="store_true", help="skip importing the worker app")
    validate.set_defaults(func=cmd_validate)

    plan = with_file(commands.add_parser("plan", help="show what apply would change"))
    plan.add_argument("--prune", action="store_true", help="include deletions of undeclared items")
    plan.add_argument("--refresh-clusters", action="store_true", help="resend cluster properties")
    plan.set_defaults(func=cmd_plan)

    apply = with_file(commands.add_parser("apply", help="make Restate and Kafka match the file"))
    apply.add_argument(
        "--prune", action="store_true", help="delete subscriptions and clusters not declared"
    )
    apply.add_argument(
        "--refresh-clusters",
        action="store_true",
        help="resend cluster properties (Restate redacts secrets, so they cannot be compared)",
    )
    apply.set_defaults(func=cmd_apply)

    for verb, text in (("pause", "stop consuming, keep the group"), ("resume", "continue")):
        p = with_file(commands.add_parser(verb, help=f"{text}: edits the file, then applies"))
        p.add_argument("name", help="the binding's name")
        p.set_defaults(func=cmd_pause_resume)

    status_cmd = with_file(commands.add_parser("status", help="lag and invocations per binding"))
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    status_cmd.set_defaults(func=cmd_status)

    unblock_cmd = with_file(
        commands.add_parser(
            "unblock", help="move a binding past records its subscription cannot deliver"
        )
    )
    unblock_cmd.add_argument("name", help="the binding's name")
    unblock_cmd.add_argument(
        "--force-drop",
        action="store_true",
        help="without a dead_letter topic: drop the blocking records instead of refusing",
    )
    unblock_cmd.set_defaults(func=cmd_unblock)

    worker = with_file(commands.add_parser("worker", help="serve the bindings file's app"))
    worker.add_argument("--port", type=int, help="default: the port of worker.uri")
    worker.add_argument("--host", help="bind address (default: from worker.uri)")
    worker.add_argument("--processes", type=int, help="default: worker.processes")
    worker.add_argument("--apply", action="store_true", help="apply the bindings once serving")
    worker.set_defaults(func=cmd_worker)

    dev = with_ports(
        with_home(
            with_file(commands.add_parser("dev", help="engines + worker + bindings, logs streamed"))
        ),
        from_file=True,
    )
    dev.set_defaults(func=cmd_dev)

    publish = commands.add_parser("publish", help="produce records by hand to a topic")
    publish.add_argument("topic")
    publish.add_argument(
        "-f",
        "--bindings",
        type=Path,
        default=Path("bindings.yaml"),
        help="the bindings file: clusters, and the format of a binding on the topic "
        "(default: %(default)s)",
    )
    where = publish.add_mutually_exclusive_group()
    where.add_argument("--cluster", help="a Kafka cluster of the bindings file")
    where.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    publish.add_argument("--key", help="the record key (UTF-8 text), with --value")
    what = publish.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--value", help="one record's value: JSON (json, avro), text (string), base64 (bytes)"
    )
    what.add_argument(
        "--file",
        dest="records",
        type=Path,
        metavar="RECORDS.jsonl",
        help='records, one JSON object a line: {"key": "k", "value": ...} or "value_base64" '
        "(raw bytes, sent as they are); - reads stdin",
    )
    publish.add_argument(
        "--format", choices=FORMATS, help="default: the binding's on this topic, else json"
    )
    publish.add_argument("--schema", type=Path, help="Avro schema file (.avsc) for format avro")
    publish.add_argument("--avro-wire", choices=AVRO_WIRES, help="default: the binding's, plain")
    publish.add_argument("--schema-id", type=int, help="registry schema id (confluent wire)")
    publish.add_argument(
        "--envelope",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="wrap JSON values in a CloudEvents envelope with a fresh id (default: no)",
    )
    publish.set_defaults(func=cmd_publish)

    tail = commands.add_parser("tail", help="show a topic's records (no consumer group)")
    tail.add_argument("topic")
    tail.add_argument(
        "-f",
        "--bindings",
        type=Path,
        default=Path("bindings.yaml"),
        help="the bindings file naming the Kafka cluster (default: %(default)s)",
    )
    tail_where = tail.add_mutually_exclusive_group()
    tail_where.add_argument("--cluster", help="a Kafka cluster of the bindings file")
    tail_where.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    tail.add_argument("--last", type=int, metavar="N", help="only the last N per partition")
    tail.add_argument("--follow", action="store_true", help="keep showing new records")
    tail.set_defaults(func=cmd_tail)

    dlq_cmd = commands.add_parser("dlq", help="list or redrive a binding's dead letters")
    dlq_commands = dlq_cmd.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = with_file(
        dlq_commands.add_parser("list", help="show the dead letters, read from the beginning"),
        server=False,
    )
    dlq_list.add_argument("name", help="the binding's name")
    dlq_list.add_argument("--json", action="store_true", help="the records, with dlq coordinates")
    dlq_list.add_argument("--limit", type=_positive, help="read at most N records")
    dlq_list.set_defaults(func=cmd_dlq)
    redrive = with_file(
        dlq_commands.add_parser(
            "redrive", help="send each dead letter through the handler again, at most once"
        ),
        server=False,
    )
    redrive.add_argument("name", help="the binding's name")
    redrive.add_argument("--dry-run", action="store_true", help="print what would be sent")
    redrive.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the handler to finish them (default: %(default)s)",
    )
    redrive.set_defaults(func=cmd_dlq)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # librdkafka's transient warnings (a fresh broker loading its coordinator, a broker
    # restarting) are noise at a prompt; its errors still show.
    logging.getLogger("connectors.librdkafka").setLevel(logging.ERROR)
    try:
        code: int = args.func(args)
    except _USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

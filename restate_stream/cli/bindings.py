"""`validate`, `plan`, `apply`, `pause`, `resume`: the bindings file against Restate and Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.text import Text

from restate_stream.bindings import BindingsFile, load_checked
from restate_stream.bindings.edit import set_paused
from restate_stream.cli import options
from restate_stream.cli.output import err, plural, say, show
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import ApplyReport, apply_plan
from restate_stream.control.blocked import UnblockReport, unblock
from restate_stream.control.plan import Plan, plan_live

_CHANGE_STYLES = {"+": "green", "~": "yellow", "-": "red"}
_OUTCOME_STYLES = {"applied": "green", "failed": "bold red", "not attempted": "yellow"}


def admin_client(spec: BindingsFile, wait: float) -> AdminClient:
    return AdminClient(spec.restate.admin_url, startup_timeout=wait)


def render_plan(plan: Plan) -> Text:
    text = Text()
    for change in plan.changes:
        line = change.describe()
        text.append(line + "\n", _CHANGE_STYLES.get(line[:1], ""))
    for line in plan.unchanged:
        text.append(f"  {line}\n", "dim")
    for line in plan.notes:
        text.append(f"note: {line}\n", "cyan")
    if plan.empty:
        text.append("No changes: Restate and Kafka match the file.")
    else:
        text.append(f"{len(plan.changes)} change(s).", "bold")
    return text


def _progress(line: str) -> None:
    status = line[1 : line.find("]")] if line.startswith("[") else ""
    say((line, _OUTCOME_STYLES.get(status, "")))


def render_report(report: ApplyReport) -> Text:
    text = Text()
    for o in report.outcomes:
        detail = f": {o.detail}" if o.detail else ""
        text.append(
            f"[{o.status}] {o.change.describe()}{detail}\n", _OUTCOME_STYLES.get(o.status, "")
        )
    applied = sum(o.status == "applied" for o in report.outcomes)
    text.append(f"{applied} of {len(report.outcomes)} change(s) applied.")
    if not report.ok:
        text.append("\nFix the failure and run apply again: it continues from what is live.")
    return text


async def apply_file(
    spec: BindingsFile,
    *,
    wait: float,
    prune: bool = False,
    refresh_clusters: bool = False,
    only: str | None = None,
) -> int:
    """Plan and apply (only the changes of binding `only`, when given); exit status 1 when a
    change failed."""
    async with admin_client(spec, wait) as admin:
        plan = await plan_live(
            spec, admin, prune=prune, refresh_clusters=refresh_clusters, only=only
        )
        if plan.empty:
            say("No changes: Restate and Kafka already match the file.")
            return 0
        report = await apply_plan(plan, spec, admin, progress=_progress)
        applied = sum(o.status == "applied" for o in report.outcomes)
        say(f"{applied} of {len(report.outcomes)} change(s) applied.")
        if not report.ok:
            err().print(render_report(report))
            return 1
        return 0


prune_option = click.option(
    "--prune", is_flag=True, help="include deletions of subscriptions and clusters not declared"
)
refresh_option = click.option(
    "--refresh-clusters",
    is_flag=True,
    help="resend cluster properties (Restate redacts secrets, so they cannot be compared)",
)


@click.command(
    epilog=options.example(
        "restate-stream validate", "restate-stream validate -f prod.yaml --no-app"
    )
)
@options.bindings_file
@click.option("--no-app", is_flag=True, help="skip importing the worker app")
def validate(file: Path, no_app: bool) -> int:
    """Check the bindings file (no server needed)."""
    spec = load_checked(file, check_app=not no_app)
    checked = "" if no_app or spec.worker is None else f", checked against {spec.worker.app}"
    say(
        (f"{file}: ok", "green"),
        f" ({plural(len(spec.bindings), 'binding')}, "
        f"{plural(len(spec.clusters), 'Kafka cluster')}, "
        f"{plural(len(spec.topics), 'topic')}{checked})",
    )
    return 0


@click.command(epilog=options.example("restate-stream plan --prune"))
@options.bindings_file
@options.wait
@options.admin_url
@prune_option
@refresh_option
def plan(
    file: Path, wait: float, admin_url: str | None, prune: bool, refresh_clusters: bool
) -> int:
    """Show what apply would change."""
    spec = options.pointed_at(load_checked(file), admin_url)

    async def run() -> Plan:
        async with admin_client(spec, wait) as admin:
            return await plan_live(spec, admin, prune=prune, refresh_clusters=refresh_clusters)

    show(render_plan(asyncio.run(run())))
    return 0


@click.command(
    epilog=options.example(
        "restate-stream apply", "restate-stream apply -f prod.yaml --admin-url http://10.0.0.5:9070"
    )
)
@options.bindings_file
@options.wait
@options.admin_url
@prune_option
@refresh_option
def apply(
    file: Path, wait: float, admin_url: str | None, prune: bool, refresh_clusters: bool
) -> int:
    """Make Restate and Kafka match the file."""
    spec = options.pointed_at(load_checked(file), admin_url)
    return asyncio.run(apply_file(spec, wait=wait, prune=prune, refresh_clusters=refresh_clusters))


def _pause_or_resume(
    file: Path, name: str, wait: float, admin_url: str | None, paused: bool
) -> int:
    if set_paused(file, name, paused):
        say(f"{file}: binding {name} now has paused: {str(paused).lower()}")
    spec = options.pointed_at(load_checked(file), admin_url)
    return asyncio.run(apply_file(spec, wait=wait, only=name))


@click.command(epilog=options.example("restate-stream pause orders"))
@click.argument("name")
@options.bindings_file
@options.wait
@options.admin_url
def pause(name: str, file: Path, wait: float, admin_url: str | None) -> int:
    """Stop consuming, keep the group: edits the file, then applies."""
    return _pause_or_resume(file, name, wait, admin_url, paused=True)


@click.command(epilog=options.example("restate-stream resume orders"))
@click.argument("name")
@options.bindings_file
@options.wait
@options.admin_url
def resume(name: str, file: Path, wait: float, admin_url: str | None) -> int:
    """Continue consuming: edits the file, then applies."""
    return _pause_or_resume(file, name, wait, admin_url, paused=False)


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


@click.command("unblock", epilog=options.example("restate-stream unblock orders"))
@click.argument("name")
@options.bindings_file
@options.wait
@options.admin_url
@click.option(
    "--force-drop",
    is_flag=True,
    help="without a dead_letter topic: drop the blocked records (they are named first)",
)
def unblock_command(
    name: str, file: Path, wait: float, admin_url: str | None, force_drop: bool
) -> int:
    """Move a binding past records its subscription cannot deliver (dead-lettered first)."""
    spec = options.pointed_at(load_checked(file, check_app=False), admin_url)

    async def run() -> UnblockReport:
        async with admin_client(spec, wait) as admin:
            return await unblock(spec, name, admin, force_drop=force_drop)

    for line in render_unblock(asyncio.run(run())).splitlines():
        say(line)
    return 0

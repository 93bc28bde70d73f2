"""`restate-stream migrate NAME --to consumer|subscription`: the exact hand-over of a live
binding between deliveries (control/migrate.py does it; this renders what it returns)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from restate_stream.bindings import BindingsFile, load_checked
from restate_stream.bindings.app_check import handler_kind, import_app
from restate_stream.bindings.model import Delivery
from restate_stream.cli import options
from restate_stream.cli.bindings import admin_client
from restate_stream.cli.output import err, print_json, say, show
from restate_stream.control.migrate import (
    Migration,
    MigrationReport,
    StepOutcome,
    find_binding,
    migrate,
    plan_migration,
)

_STATUS_STYLES = {"done": "green", "failed": "bold red", "not attempted": "yellow"}
_WHAT_NEXT = {
    "consumer": "the worker's consumer takes the binding over from the committed offsets as "
    "soon as it reads the file (a worker started later does too)",
    "subscription": "the subscription resumes from the offsets the consumer committed",
}


def _handler_kind(spec: BindingsFile, name: str) -> str | None:
    """The kind of the binding's handler in the worker app; None when the file names no app.
    restate-stream's own objects (windows, tables) are exclusive."""
    binding = find_binding(spec, name)
    if spec.worker is None:
        return None
    if binding.provided:
        return "exclusive"
    _, services = import_app(spec.worker.app)  # imported once by load_checked already
    service = next((s for s in services if s.name == binding.service), None)
    return None if service is None else handler_kind(service, binding.handler)


def render_steps(migration: Migration) -> Text:
    text = Text(f"{migration.binding} -> {migration.to} (group {migration.group}):\n", "bold")
    for i, step in enumerate(migration.steps, 1):
        text.append(f"  {i}. {step.describe()}\n")
    return text


def render_outcome(outcome: StepOutcome) -> Text:
    detail = f": {outcome.detail}" if outcome.detail else ""
    style = _STATUS_STYLES.get(outcome.status, "")
    return Text(f"[{outcome.status}] {outcome.step.describe()}{detail}", style)


def render_report(report: MigrationReport) -> Text:
    m = report.migration
    if report.ok:
        return Text(f"{m.binding} moved to {m.to} delivery; {_WHAT_NEXT[m.to]}.", "green")
    text = Text(f"{m.binding} not moved to {m.to}:\n", "bold red")
    for outcome in report.outcomes:
        text.append_text(render_outcome(outcome))
        text.append("\n")
    text.append("Fix the failure and run migrate again: it continues from what is live.")
    return text


def report_json(report: MigrationReport) -> dict[str, Any]:
    m = report.migration
    return {
        "binding": m.binding,
        "to": m.to,
        "group": m.group,
        "ok": report.ok,
        "steps": [
            {"step": o.step.describe(), "status": o.status, "detail": o.detail}
            for o in report.outcomes
        ],
    }


@click.command(
    "migrate",
    epilog=options.example(
        "restate-stream migrate orders --to consumer",
        "restate-stream migrate orders --to subscription --dry-run",
    ),
)
@click.argument("name")
@click.option(
    "--to",
    "to",
    type=click.Choice(["consumer", "subscription"]),
    required=True,
    help="the delivery to move the binding to",
)
@click.option("--dry-run", is_flag=True, help="show the steps, change nothing")
@options.bindings_file
@options.wait
@options.admin_url
@options.as_json
def migrate_command(
    name: str,
    to: Delivery,
    dry_run: bool,
    file: Path,
    wait: float,
    admin_url: str | None,
    as_json: bool,
) -> int:
    """Move a live binding between a Restate subscription and the worker's consumer, exactly:
    nothing lost, nothing applied twice, each key's order kept. Edits the file's `delivery:`."""
    spec = options.pointed_at(load_checked(file), admin_url)
    kind = _handler_kind(spec, name)

    def progress(outcome: StepOutcome) -> None:
        if not as_json:
            say(render_outcome(outcome))

    async def run() -> Migration | MigrationReport:
        async with admin_client(spec, wait) as admin:
            if dry_run:
                subscriptions = await admin.list_subscriptions()
                return plan_migration(spec, name, to, subscriptions, kind)
            return await migrate(spec, name, to, admin, handler_kind=kind, progress=progress)

    result = asyncio.run(run())
    if isinstance(result, Migration):
        if as_json:
            print_json({"binding": name, "to": to, "steps": [s.describe() for s in result.steps]})
        else:
            show(render_steps(result))
        return 0
    if as_json:
        print_json(report_json(result))
    elif result.ok:
        show(render_report(result))
    else:
        err().print(render_report(result))
    return 0 if result.ok else 1

"""`restate-stream status`: per binding its subscription, lag, invocations and dead letters."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import click
from rich.console import Console, Group, RenderableType
from rich.text import Text

from connectors import TopicAdmin
from restate_stream.bindings import load_checked
from restate_stream.cli import options
from restate_stream.cli.bindings import admin_client
from restate_stream.cli.output import print_json, show, table
from restate_stream.control.status import BindingStatus, binding_statuses

_STATE_STYLES = {
    "active": "green",
    "batched": "green",
    "consumer": "green",
    "paused": "yellow",
    "missing": "red",
}


def _lag(s: BindingStatus) -> Text:
    if s.lag_error:
        return Text(f"unknown ({s.lag_error})", "red")
    per_partition = " ".join(
        f"p{p.partition}={p.lag}" + ("" if p.committed is not None else "(no commit)")
        for p in s.lag
    )
    return Text.assemble((str(s.total_lag), "bold"), f" ({per_partition})" if s.lag else "")


def _invocations(s: BindingStatus) -> Text:
    if s.invocations_error:
        return Text(f"unknown ({s.invocations_error})", "red")
    if not s.invocations:
        return Text("none", "dim")
    styles = {"failed": "red", "backing-off": "yellow", "paused": "yellow", "succeeded": "green"}
    text = Text()
    for i, (state, count) in enumerate(sorted(s.invocations.items())):
        text.append(", " if i else "")
        text.append(f"{state} {count}", styles.get(state, ""))
    return text


def _dead_letters(s: BindingStatus) -> Text:
    if s.dead_letter_topic is None:
        return Text("-", "dim")
    written = "?" if s.dead_letters is None else str(s.dead_letters)
    resolved = f" ({s.dead_letters_resolved} resolved)" if s.dead_letters_resolved else ""
    style = "red" if s.dead_letters else ""
    return Text(f"{written} on {s.dead_letter_topic}{resolved}", style)


def render_statuses(statuses: list[BindingStatus]) -> RenderableType:
    if not statuses:
        return Text("No bindings declared.")
    grid = table(
        "BINDING", "STATE", "SOURCE -> SINK", "GROUP", "SUBSCRIPTION", "LAG", "INVOCATIONS",
        "DEAD LETTERS",
    )  # fmt: skip
    stuck = Text()
    for s in statuses:
        grid.add_row(
            s.name,
            Text(s.state, _STATE_STYLES.get(s.state, "")),
            f"{s.source} -> {s.sink}",
            s.group,
            ", ".join(s.subscription_ids)
            or ("own consumer" if s.state in ("batched", "consumer") else "none"),
            _lag(s),
            _invocations(s),
            _dead_letters(s),
        )
        for blocked in s.blocked:
            line = f"{s.name}: blocked {blocked.describe()}; run restate-stream unblock {s.name}"
            stuck.append(f"\n{line}", "bold red")
        if s.blocked_error:
            stuck.append(f"\n{s.name}: blocked partitions unknown ({s.blocked_error})", "yellow")
        for key in s.stuck_keys:
            failure = key.get("last_failure") or ""
            line = (
                f"{s.name}: stuck key {key['key']!r}: {key['status']} after "
                f"{key.get('retry_count') or 0} retries {failure}".rstrip()
            )
            stuck.append(f"\n{line}", "yellow")
        for warning in s.warnings:
            stuck.append(f"\n{warning}", "yellow")
    return Group(grid, stuck) if stuck else grid


def render_text(statuses: list[BindingStatus]) -> str:
    """The table as plain text, as a pipe receives it."""
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, color_system=None, soft_wrap=True).print(
        render_statuses(statuses)
    )
    return buffer.getvalue()


@click.command(epilog=options.example("restate-stream status", "restate-stream status --json"))
@options.bindings_file
@options.wait
@options.admin_url
@options.as_json
def status(file: Path, wait: float, admin_url: str | None, as_json: bool) -> int:
    """Lag and invocations per binding."""
    spec = options.pointed_at(load_checked(file, check_app=False), admin_url)

    async def run() -> list[BindingStatus]:
        async with admin_client(spec, wait) as admin:
            return await binding_statuses(spec, admin, TopicAdmin)

    statuses = asyncio.run(run())
    if as_json:
        print_json([s.to_json() for s in statuses])
    else:
        show(render_statuses(statuses))
    return 0

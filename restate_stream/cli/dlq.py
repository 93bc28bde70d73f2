"""`restate-stream dlq list|redrive`: a binding's dead letters per source record, and sending
the unresolved ones through the handler again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import click

from restate_stream._util.text import one_line
from restate_stream.bindings import Binding, load_checked
from restate_stream.cli import options
from restate_stream.cli.output import note, print_json, say
from restate_stream.dlq import (
    SUCCESSFUL,
    Listing,
    Outcome,
    RedriveRequest,
    RedriveResult,
    SourceHistory,
    StoredLetter,
    StoredResolution,
    find_binding,
    load_listing,
    plan_redrive,
    run_redrive,
)
from restate_stream.dlq.redrive import MESSAGE_WIDTH
from restate_stream.runtime.dead_letter import DeadLetter, Resolution

_OUTCOME_STYLES = {
    "resolved": "green",
    "done": "green",
    "failed again": "red",
    "error": "bold red",
    "pending": "yellow",
    "skipped": "yellow",
}


def _key(key: str | None) -> str:
    return "key=-" if key is None else f"key={json.dumps(key, ensure_ascii=False)}"


def render_history(history: SourceHistory) -> str:
    latest = history.latest.letter
    return "  ".join(
        [
            history.source.describe(),
            _key(history.key),
            f"letters={len(history.letters)}",
            f"attempts={history.attempts}",
            latest.error.type,
            json.dumps(one_line(latest.error.message, MESSAGE_WIDTH), ensure_ascii=False),
            latest.failed_at.isoformat(),
            f"latest={history.latest.position}",
            "resolved" if history.resolved else "unresolved",
        ]
    )


def render_refused(entry: StoredLetter | StoredResolution) -> str:
    record: DeadLetter | Resolution
    if isinstance(entry, StoredResolution):
        record, kind = entry.resolution, "resolution"
    else:
        record, kind = entry.letter, "letter"
    where = f"{entry.position:>12}  {record.source.describe()}  {_key(record.key)}"
    return f"{where}  REFUSED {kind}: {entry.distrust}"


def render_listing(listing: Listing) -> str:
    lines = [render_history(h) for h in listing.records]
    lines += [f"{u.position:>12}  ({u.problem})" for u in listing.unreadable]
    lines += [render_refused(r) for r in listing.refused]
    unresolved = len(listing.unresolved)
    note = f"; {listing.others} of other bindings not shown" if listing.others else ""
    if listing.refused:
        note += f"; {len(listing.refused)} refused (not redriven, resolving nothing)"
    lines.append(
        f"{len(listing.records)} source record(s) with dead letters of binding "
        f"{listing.binding} on {listing.topic}: {unresolved} unresolved, "
        f"{len(listing.records) - unresolved} resolved ({listing.letter_count} letter(s){note})"
    )
    return "\n".join(lines)


def refused_json(entry: StoredLetter | StoredResolution) -> dict[str, Any]:
    if isinstance(entry, StoredResolution):
        record: dict[str, Any] = {"resolution": entry.resolution.to_json()}
    else:
        record = {"letter": entry.letter.to_json()}
    return {"dlq": entry.at.model_dump(), "refused": entry.distrust, **record}


def render_request(request: RedriveRequest, ingress_url: str) -> str:
    body = request.body.decode("utf-8", "replace")
    url = f"{ingress_url.rstrip('/')}/{request.path}"
    lines = [f"{request.letter.position:>12}  POST {url}"]
    indent = " " * 14
    lines.append(f"{indent}idempotency-key: {request.idempotency_key}")
    lines += [f"{indent}{name}: {value}" for name, value in request.headers.items()]
    lines.append(f"{indent}body ({len(request.body)} bytes): {one_line(body, 100)}")
    return "\n".join(lines)


def render_result(result: RedriveResult) -> str:
    where = f"{result.letter.position:>12}  {result.history.source.describe()}"
    detail = f": {result.detail}" if result.detail else ""
    return f"{where}  {_key(result.history.key)}  {result.outcome}{detail}"


def summary(binding: Binding, results: list[RedriveResult]) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in get_args(Outcome)}
    shown = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    return f"redrive {binding.name}: {len(results)} source record(s): {shown or 'nothing to do'}"


@click.group(
    "dlq",
    epilog=options.example(
        "restate-stream dlq list orders", "restate-stream dlq redrive orders --dry-run"
    ),
)
def dlq() -> None:
    """List or redrive a binding's dead letters."""


@dlq.command("list", epilog=options.example("restate-stream dlq list orders --json"))
@click.argument("name")
@options.bindings_file
@options.as_json
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="read at most N records")
def list_command(name: str, file: Path, as_json: bool, limit: int | None) -> int:
    """One entry per source record with its history (--json: every letter too)."""
    spec = load_checked(file, check_app=False)
    listing = load_listing(spec, find_binding(spec, name), limit=limit)
    if as_json:
        shown = [h.to_json() for h in listing.records]
        shown += [{"dlq": u.at.model_dump(), "problem": u.problem} for u in listing.unreadable]
        shown += [refused_json(r) for r in listing.refused]
        print_json(shown)
        return 0
    for line in render_listing(listing).splitlines():
        say(line)
    return 0


@dlq.command(epilog=options.example("restate-stream dlq redrive orders --dry-run"))
@click.argument("name")
@options.bindings_file
@click.option("--dry-run", is_flag=True, help="print what would be sent")
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="seconds to wait for the handler to finish them",
)
def redrive(name: str, file: Path, dry_run: bool, timeout: float) -> int:
    """Send each unresolved source record's latest dead letter through the handler again.
    Exit status 0 when every one of them is now resolved."""
    spec = load_checked(file, check_app=False)
    binding = find_binding(spec, name)
    ingress = spec.restate.ingress_url
    if dry_run:
        items = plan_redrive(binding, load_listing(spec, binding))
        for item in items:
            if isinstance(item, RedriveRequest):
                say(render_request(item, ingress))
            else:
                say(f"{item.letter.position:>12}  ", ("skipped", "yellow"), f": {item.detail}")
        sendable = sum(isinstance(i, RedriveRequest) for i in items)
        say(f"dry run: {sendable} of {len(items)} unresolved source record(s) would be sent")
        return 0
    note(f"redriving the unresolved dead letters of {name} through {ingress}")
    results = run_redrive(spec, binding, timeout)
    for result in results:
        say((render_result(result), _OUTCOME_STYLES.get(result.outcome, "")))
    say((summary(binding, results), "bold"))
    return 0 if all(r.outcome in SUCCESSFUL for r in results) else 1

"""`restate-stream dlq list|redrive`: a binding's dead letters, and sending them through again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from restate_stream import dlq as dead_letters
from restate_stream.bindings import Binding, load_checked
from restate_stream.cli import options
from restate_stream.cli.output import note, print_json, say, show, table
from restate_stream.dlq import DeadLetter, RedriveRequest, RedriveResult

_MESSAGE_WIDTH = 60
_OUTCOME_STYLES = {
    "ok": "green",
    "already redriven": "green",
    "failed again": "red",
    "error": "bold red",
    "pending": "yellow",
    "skipped": "yellow",
}


def _one_line(text: Any, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _key(letter: DeadLetter) -> str:
    key = letter.key
    return "key=-" if key is None else f"key={json.dumps(key, ensure_ascii=False)}"


def _columns(letter: DeadLetter) -> list[str]:
    """position, source, key, error type, message, attempts, failed at, note."""
    if letter.record is None:
        return [letter.position, "", "", "", f"({letter.problem})", "", "", ""]
    topic, partition, offset = letter.source_coordinates
    error = letter.record.get("error") or {}
    return [
        letter.position,
        f"{topic}[{partition}]@{offset}",
        _key(letter),
        str(error.get("type", "?")),
        json.dumps(_one_line(error.get("message", ""), _MESSAGE_WIDTH), ensure_ascii=False),
        f"attempts={letter.record.get('attempts', '?')}",
        str(letter.record.get("failed_at", "?")),
        "(from a redrive)" if letter.from_redrive else "",
    ]


def render_line(letter: DeadLetter) -> str:
    """A dead letter as one line of text."""
    first, *rest = _columns(letter)
    return "  ".join([f"{first:>12}", *(c for c in rest if c)])


def render_request(request: RedriveRequest) -> str:
    body = request.body.decode("utf-8", "replace")
    lines = [f"{request.letter.position:>12}  POST {request.url}"]
    indent = " " * 14
    lines += [f"{indent}{name}: {value}" for name, value in request.headers.items()]
    lines.append(f"{indent}body ({len(request.body)} bytes): {_one_line(body, 100)}")
    return "\n".join(lines)


def render_result(result: RedriveResult) -> str:
    letter = result.letter
    topic, partition, offset = letter.source_coordinates
    where = f"{letter.position:>12}  {topic}[{partition}]@{offset}  {_key(letter)}"
    detail = f": {result.detail}" if result.detail else ""
    invocation = f"  ({result.invocation_id})" if result.invocation_id else ""
    return f"{where}  {result.outcome}{detail}{invocation}"


def summary(binding: Binding, results: list[RedriveResult]) -> str:
    counts: Mapping[str, int] = {
        outcome: sum(r.outcome == outcome for r in results)
        for outcome in ("ok", "failed again", "already redriven", "pending", "error", "skipped")
    }
    shown = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    return f"redrive {binding.name}: {len(results)} dead letter(s): {shown or 'nothing to do'}"


@click.group("dlq")
def dlq() -> None:
    """List or redrive a binding's dead letters."""


@dlq.command("list")
@click.argument("name")
@options.bindings_file
@options.as_json
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="read at most N records")
def list_command(name: str, file: Path, as_json: bool, limit: int | None) -> int:
    """Show the dead letters, read from the beginning (--json: the records, with dlq
    coordinates)."""
    listing = dead_letters.list_dead_letters(load_checked(file, check_app=False), name, limit=limit)
    if as_json:
        print_json([letter.to_json() for letter in listing.letters])
        return 0
    if listing.letters:
        grid = table(
            "DLQ", "SOURCE", "KEY", "ERROR", "MESSAGE", "ATTEMPTS", "FAILED AT", ""
        )  # fmt: skip
        for letter in listing.letters:
            cells = _columns(letter)
            style = "red" if letter.record is None else ""
            grid.add_row(*cells[:3], Text(cells[3], "red"), *cells[4:], style=style)
        show(grid)
    others = f" ({listing.others} of other bindings not shown)" if listing.others else ""
    say(
        f"{len(listing.letters)} dead letter(s) of binding {name} "
        f"on {listing.binding.dead_letter}{others}"
    )
    return 0


@dlq.command()
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
    """Send each dead letter through the handler again, at most once. Exit status 0 when every
    dead letter is now handled (ok or already redriven)."""
    spec = load_checked(file, check_app=False)
    report = dead_letters.redrive(spec, name, dry_run=dry_run, timeout=timeout, progress=note)
    if report.results is None:
        for item in report.items:
            if isinstance(item, RedriveRequest):
                say(render_request(item))
            else:
                say(f"{item.letter.position:>12}  ", ("skipped", "yellow"), f": {item.detail}")
        sendable = sum(isinstance(i, RedriveRequest) for i in report.items)
        say(f"dry run: {sendable} of {len(report.items)} dead letter(s) of {name} would be sent")
        return 0
    for result in report.results:
        say((render_result(result), _OUTCOME_STYLES.get(result.outcome, "")))
    say((summary(report.binding, report.results), "bold"))
    return 0 if report.ok else 1

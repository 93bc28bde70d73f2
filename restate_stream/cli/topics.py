"""`restate-stream publish` and `tail`: records by hand to a topic, and what a topic holds."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from connectors.consume import ConsumedRecord
from restate_stream.bindings import BindingsFile, load_checked
from restate_stream.bindings.model import AVRO_WIRES, FORMATS, Format
from restate_stream.cli import options
from restate_stream.cli.output import err, out, say
from restate_stream.runtime.formats import unwrap_cloudevent
from restate_stream.topics.publish import PublishResult, publish, resolve_target
from restate_stream.topics.tail import tail as tail_topic

WIDTH = 160  # characters of a record's value shown by tail


def _optional_spec(file: Path, bootstrap: str | None) -> BindingsFile | None:
    """With --bootstrap the bindings file is optional: it only lends a binding's format."""
    if bootstrap is None or file.exists():
        return load_checked(file, check_app=False)
    return None


def _one_of(ctx: click.Context, *names: str, required: bool = False) -> None:
    given = [n for n in names if ctx.params.get(n) is not None]
    flags = " and ".join(f"--{n.replace('_', '-')}" for n in names)
    if len(given) > 1:
        raise click.UsageError(f"{flags} exclude each other", ctx)
    if required and not given:
        raise click.UsageError(f"one of {flags.replace(' and ', ', ')} is needed", ctx)


@contextmanager
def progress_bar() -> Iterator[Callable[[int, int], None]]:
    """publish's progress: a bar on a terminal, nothing in a pipe."""
    console = out()
    if not console.is_terminal:
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn("publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("publish", total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance


def render_result(result: PublishResult) -> str:
    partitions = ", ".join(f"{p} ({n})" for p, n in sorted(result.partitions.items()))
    seconds = result.seconds
    rate = f", {result.total / seconds:,.0f}/s" if result.total > 1 and seconds > 0 else ""
    return (
        f"published {result.written} of {result.total} record(s) to {result.topic} "
        f"on {result.cluster} in {seconds:.2f}s{rate}; partitions: {partitions or 'none'}"
    )


@click.command(
    "publish",
    epilog=options.example(
        "restate-stream publish orders --records orders.jsonl",
        'restate-stream publish orders --key alice --value \'{"id": "o-1", "amount_cents": 1250}\'',
    ),
)
@click.argument("topic")
@options.bindings_file
@click.option("--cluster", help="a Kafka cluster of the bindings file")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
@click.option("--key", help="the record key (UTF-8 text), with --value")
@click.option(
    "--value", help="one record's value: JSON (json, avro), text (string), base64 (bytes)"
)
@click.option(
    "--records",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    metavar="RECORDS.jsonl",
    help='records, one JSON object a line: {"key": "k", "value": ...} or "value_base64" '
    "(raw bytes, sent as they are); - reads stdin",
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="default: the binding's, else json"
)
@click.option(
    "--schema",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Avro schema file (.avsc) for format avro",
)
@click.option("--avro-wire", type=click.Choice(AVRO_WIRES), help="default: the binding's, plain")
@click.option("--schema-id", type=int, help="registry schema id (confluent wire)")
@click.option(
    "--envelope/--no-envelope",
    default=False,
    help="wrap JSON values in a CloudEvents envelope with a fresh id  [default: no]",
)
@click.pass_context
def publish_command(
    ctx: click.Context,
    topic: str,
    file: Path,
    cluster: str | None,
    bootstrap: str | None,
    key: str | None,
    value: str | None,
    records: Path | None,
    fmt: Format | None,
    schema: Path | None,
    avro_wire: str | None,
    schema_id: int | None,
    envelope: bool,
) -> int:
    """Produce records by hand to a topic (a binding's format by default)."""
    _one_of(ctx, "cluster", "bootstrap")
    _one_of(ctx, "value", "records", required=True)
    if key is not None and records is not None:
        raise click.UsageError("--key goes with --value; each line of --records has its own key")
    with progress_bar() as advance:
        result = publish(
            _optional_spec(file, bootstrap),
            topic,
            cluster=cluster,
            bootstrap=bootstrap,
            key=key,
            value=value,
            records_file=records,
            fmt=fmt,
            schema=schema,
            avro_wire=avro_wire,
            schema_id=schema_id,
            envelope=envelope,
            progress=advance,
        )
    say(render_result(result))
    if not result.ok:
        err().print(result.failure_report(), style="red")
        return 1
    return 0


def render_record(record: ConsumedRecord) -> str:
    """`p<partition>@<offset>  key=<key>  <value>`: text, an envelope's id and data, or base64."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else "-"
    value = record.value or b""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        shown = f"base64:{base64.b64encode(value).decode()}"
    else:
        shown = text
        try:
            data, event_id, _ = unwrap_cloudevent(json.loads(text))
        except ValueError:
            pass
        else:
            if event_id is not None:
                shown = f"[event {event_id}] {json.dumps(data, separators=(',', ':'))}"
    if len(shown) > WIDTH:
        shown = shown[: WIDTH - 1] + "…"
    return f"p{record.partition}@{record.offset}  key={key}  {shown}"


@click.command(
    "tail",
    epilog=options.example(
        "restate-stream tail orders --last 10", "restate-stream tail order-totals --follow"
    ),
)
@click.argument("topic")
@options.bindings_file
@click.option("--cluster", help="a Kafka cluster of the bindings file")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
@click.option(
    "--last", type=click.IntRange(min=0), metavar="N", help="only the last N per partition"
)
@click.option("--follow", is_flag=True, help="keep showing new records")
@click.pass_context
def tail_command(
    ctx: click.Context,
    topic: str,
    file: Path,
    cluster: str | None,
    bootstrap: str | None,
    last: int | None,
    follow: bool,
) -> int:
    """Show a topic's records (no consumer group)."""
    _one_of(ctx, "cluster", "bootstrap")
    target = resolve_target(_optional_spec(file, bootstrap), topic, cluster, bootstrap)

    def show(record: ConsumedRecord) -> None:
        line = render_record(record)
        head, _, rest = line.partition("  ")
        say((head, "dim"), "  ", rest)

    count = tail_topic(target, last=last, follow=follow, show=show)
    if not follow:
        say(f"{count} record(s) on {topic}")
    return 0

"""The root of the `restate-stream` command line, and the one place errors are reported.

Commands return their exit status; any RestateStreamError they raise (a bad bindings file,
an unreachable engine, ...) becomes one `error: ...` message on stderr and exit status 2,
never a traceback; `--debug` (or RESTATE_STREAM_DEBUG=1) shows the traceback instead.
Other exceptions are bugs, and keep their traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import click
from rich.text import Text

from restate_stream.cli import (
    bindings,
    completion,
    dlq,
    init,
    metrics,
    migrate,
    stack,
    status,
    topics,
    ui,
    worker,
)
from restate_stream.cli.options import example
from restate_stream.cli.output import err
from restate_stream.errors import RestateStreamError

USER_ERROR = 2  # also click's status for a usage error


@dataclass
class Settings:
    debug: bool = False


def report(error: RestateStreamError, *, debug: bool) -> None:
    if debug:
        traceback.print_exception(error)
    else:
        err().print(Text.assemble(("error:", "bold red"), f" {error}"))


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order added: by what people do first

    def invoke(self, ctx: click.Context) -> Any:
        """The subcommand's exit status becomes the process's; a RestateStreamError is
        reported here, once, for every command."""
        settings = ctx.ensure_object(Settings)
        try:
            result = super().invoke(ctx)
        except RestateStreamError as exc:
            report(exc, debug=settings.debug)
            raise click.exceptions.Exit(USER_ERROR) from None
        if isinstance(result, int) and result != 0:
            raise click.exceptions.Exit(result)
        return result


@click.group(
    cls=_Root,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=example("restate-stream init my-project", "restate-stream dev"),
)
@click.version_option(package_name="restate-stream", prog_name="restate-stream")
@click.option(
    "--debug",
    is_flag=True,
    envvar="RESTATE_STREAM_DEBUG",
    help="show the traceback of an error, not just its message",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Kafka-centric event processing on Restate."""
    ctx.ensure_object(Settings).debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # librdkafka's transient warnings (a fresh broker loading its coordinator, a broker
    # restarting) are noise at a prompt; its errors still show.
    logging.getLogger("connectors.librdkafka").setLevel(logging.ERROR)


cli.add_command(init.init)
cli.add_command(stack.stack)
for command in (
    bindings.validate,
    bindings.plan,
    bindings.apply,
    bindings.pause,
    bindings.resume,
    migrate.migrate_command,
    status.status,
    metrics.metrics,
    bindings.unblock_command,
    worker.worker,
    worker.dev,
    topics.publish_command,
    topics.tail_command,
    dlq.dlq,
    ui.ui,
    completion.completion,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        result: Any = cli.main(args=argv, prog_name="restate-stream", standalone_mode=False)
    except click.ClickException as exc:  # usage errors: click's message and the usage line
        exc.show()
        return exc.exit_code
    except click.Abort:  # Ctrl-C outside a command that handles it
        err().print("aborted")
        return 130
    return result if isinstance(result, int) else 0


@dataclass(frozen=True)
class ParsedCommand:
    """A command line as the CLI reads it, without running it."""

    path: tuple[str, ...]  # e.g. ("stack", "up")
    params: dict[str, Any]


def parse_command_line(argv: list[str]) -> ParsedCommand:
    """Parse `argv` (no program name) to the command it names and its parameters;
    click.UsageError when the CLI rejects it."""
    ctx = cli.make_context("restate-stream", list(argv), obj=Settings())
    path: list[str] = []
    params: dict[str, Any] = {}
    command: click.Command = cli
    while isinstance(command, click.Group):
        # click keeps the subcommand's name and arguments apart (protected_args, deprecated
        # as public in 8.2); together they are what follows the group's own options.
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = command.resolve_command(ctx, args)
        if sub is None or name is None:
            raise click.UsageError(f"no command in {argv}")
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx)
        params.update(ctx.params)
        command = sub
    return ParsedCommand(tuple(path), params)


if __name__ == "__main__":
    sys.exit(main())

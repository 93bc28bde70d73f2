"""`restate-stream completion [bash|zsh|fish]`: click's shell completion script, printed.

The script calls `restate-stream` back with `_RESTATE_STREAM_COMPLETE=<shell>_complete` set,
which click answers before running any command; sourcing it once a session (or saving it
where the shell loads completions) completes commands, options and choices.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from restate_stream.cli.options import example

PROG = "restate-stream"
COMPLETE_VAR = "_RESTATE_STREAM_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str, cli: click.Command) -> str:
    """The script that makes `shell` complete `cli`'s commands and options."""
    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"{shell!r}: expected one of {', '.join(SHELLS)}")
    return cls(cli, {}, PROG, COMPLETE_VAR).source()


def _login_shell() -> str:
    shell = Path(os.environ.get("SHELL", "")).name
    if shell not in SHELLS:
        raise click.UsageError(
            f"name the shell: one of {', '.join(SHELLS)} ($SHELL is {shell or 'not set'!r})"
        )
    return shell


@click.command(
    epilog=example(
        'eval "$(restate-stream completion bash)"          # in ~/.bashrc',
        "restate-stream completion fish > ~/.config/fish/completions/restate-stream.fish",
    )
)
@click.argument("shell", type=click.Choice(SHELLS), required=False)
@click.pass_context
def completion(ctx: click.Context, shell: str | None) -> int:
    """Print the shell completion script (default: the shell $SHELL names)."""
    # As click prints it for _RESTATE_STREAM_COMPLETE=<shell>_source: the script ends its line.
    click.echo(completion_script(shell or _login_shell(), ctx.find_root().command), nl=False)
    return 0

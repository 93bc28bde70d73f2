"""`restate-stream init [DIR]`: a new project that runs as written."""

from __future__ import annotations

from pathlib import Path

import click

from restate_stream.cli.options import example
from restate_stream.cli.output import say
from restate_stream.scaffold import scaffold


@click.command(epilog=example("restate-stream init my-project"))
@click.argument(
    "directory", type=click.Path(path_type=Path, file_okay=False), default=Path(), required=False
)
def init(directory: Path) -> int:
    """Start a project: app, bindings, tests, README. Overwrites nothing."""
    project = scaffold(directory)
    for path in project.files:
        say(("created ", "green"), str(directory / path))
    enter = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    say(f"project {project.name}: next, {enter}restate-stream validate && pytest")
    say("then `restate-stream dev` runs it on local engines (README.md)")
    return 0

"""Command-line conventions: --version, shell completion, and an example in every --help."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version

import click
import pytest
from click.testing import CliRunner

from restate_stream.cli import main
from restate_stream.cli.app import cli, parse_command_line
from restate_stream.cli.completion import COMPLETE_VAR, completion_script


def every_command(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from every_command(sub, (*path, name))


COMMANDS = list(every_command())


def test_the_tree_is_walked_whole() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "init", "stack", "stack up", "dlq", "dlq redrive", "completion"} <= paths
    assert len(paths) > 20


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def example_lines(text: str) -> list[str]:
    """The indented lines after "Example:" / "Examples:" at the end of a --help."""
    _, found, after = text.rpartition("\n  Example")
    assert found, f"no example in:\n{text}"
    return [line.strip() for line in after.splitlines()[1:] if line.strip()]


def command_line(example: str) -> list[str]:
    """The arguments of the `restate-stream ...` an example line runs (inside `$(...)`, before
    a redirection or a comment)."""
    start = example.index("restate-stream ")
    text = re.split(r"\)|\s>|\s#|\s&&", example[start:])[0]
    return shlex.split(text)[1:]


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "-" for p, _ in COMMANDS]
)
def test_every_help_ends_with_examples_the_cli_accepts(
    path: tuple[str, ...], command: click.Command
) -> None:
    examples = example_lines(help_text(path))
    assert examples
    for example in examples:
        args = command_line(example)
        parsed = parse_command_line(args)  # raises click.UsageError for a wrong example
        assert parsed.path[: len(path)] == path, f"{example!r} runs {parsed.path}, not {path}"


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"restate-stream, version {version('restate-stream')}\n"


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "#compdef restate-stream"), ("fish", "complete")],
)
def test_completion_prints_the_shells_script(
    shell: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script
    assert f"{COMPLETE_VAR}={shell}_complete" in script
    assert script == completion_script(shell, cli)


def test_completion_defaults_to_the_login_shell(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHELL", "/usr/bin/zsh")
    assert main(["completion"]) == 0
    assert "#compdef restate-stream" in capsys.readouterr().out
    monkeypatch.setenv("SHELL", "/bin/tcsh")
    assert main(["completion"]) == 2
    assert "name the shell: one of bash, zsh, fish ($SHELL is 'tcsh')" in capsys.readouterr().err


def complete(**env: str) -> subprocess.CompletedProcess[str]:
    """The command line run with click's completion variables set, as a shell runs it."""
    code = "from restate_stream.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_what_clicks_own_variable_prints(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    native = complete(**{COMPLETE_VAR: f"{shell}_source"})
    assert native.returncode == 0, native.stderr
    assert capsys.readouterr().out == native.stdout


def test_the_completion_script_is_answered_by_the_command_line() -> None:
    """What the bash script asks (`_RESTATE_STREAM_COMPLETE=bash_complete`), the CLI answers
    with the matching subcommands, before running any command."""
    done = complete(
        **{COMPLETE_VAR: "bash_complete", "COMP_WORDS": "restate-stream dlq r", "COMP_CWORD": "2"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plain,redrive"]

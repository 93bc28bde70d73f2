"""Options shared by several commands, each defined once."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from connectors.secrets import redact_url
from restate_stream.bindings import BindingsFile, RestateSettings
from restate_stream.stack import StackPorts, default_home

F = TypeVar("F", bound=Callable[..., Any])

# StackPorts' fields, each with a --<field>-port flag.
PORT_FIELDS = tuple(f.name for f in dataclasses.fields(StackPorts))

DEFAULT_BINDINGS = Path("bindings.yaml")


def bindings_file(f: F) -> F:
    """-f/--file: the bindings file, for every command that reads it."""
    return click.option(
        "-f",
        "--file",
        "file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=DEFAULT_BINDINGS,
        show_default=True,
        help="the bindings file",
    )(f)


def wait(f: F) -> F:
    return click.option(
        "--wait",
        type=float,
        default=10.0,
        show_default=True,
        help="seconds to retry an unreachable Restate admin API",
    )(f)


def _checked_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return RestateSettings(admin_url=value).admin_url
    except ValidationError:
        shown = redact_url(value)
        raise click.BadParameter(f"{shown!r} is not an http:// or https:// URL") from None


def admin_url(f: F) -> F:
    """--admin-url: another admin API than the file's (a cluster's live node), file unedited."""
    return click.option(
        "--admin-url",
        metavar="URL",
        callback=_checked_url,
        help="the Restate admin API to use instead of the file's restate.admin_url "
        "(on a cluster: any live node's)",
    )(f)


def pointed_at(spec: BindingsFile, url: str | None) -> BindingsFile:
    """`spec` with --admin-url, when given, in place of its restate.admin_url."""
    if url is None:
        return spec
    restate = spec.restate.model_copy(update={"admin_url": url})
    return dataclasses.replace(spec, restate=restate)


def home(f: F) -> F:
    return click.option(
        "--home",
        type=click.Path(path_type=Path, file_okay=False),
        default=default_home(),
        show_default=True,
        help="where the stack keeps its data, logs and pids",
    )(f)


def as_json(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="machine-readable output")(f)


def ports(*, from_file: bool = False) -> Callable[[F], F]:
    """A --<engine>-port flag per StackPorts field, handed to the command as `ports`, a dict
    field -> port (None when not given and `from_file`: dev takes the file's ports)."""
    defaults = StackPorts()

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["ports"] = {field: kwargs.pop(f"{field}_port") for field in PORT_FIELDS}
            return f(*args, **kwargs)

        decorated: Any = wrapper
        for field in reversed(PORT_FIELDS):
            decorated = click.option(
                f"--{field.replace('_', '-')}-port",
                f"{field}_port",
                type=int,
                default=None if from_file else getattr(defaults, field),
                show_default=not from_file,
            )(decorated)
        result: F = decorated
        return result

    return decorate


def example(*lines: str) -> str:
    """A command's --help epilog: the example command lines, kept as written (click's \\b)."""
    heading = "Example:" if len(lines) == 1 else "Examples:"
    return "\b\n" + heading + "\n" + "\n".join(f"  {line}" for line in lines)

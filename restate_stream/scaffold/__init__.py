"""`restate-stream init`: a new project's files, from the templates shipped in the package.

Every file under `templates/` (named `<path>.tmpl`) becomes `<path>` in the project, with
`{{project}}` replaced by the project's name. The result works as written: `validate`,
`pytest` and `dev` run in it with nothing edited (tests/unit/test_scaffold.py runs them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from restate_stream.errors import ConfigurationError

SUFFIX = ".tmpl"
PLACEHOLDER = "{{project}}"
DEFAULT_NAME = "restate-stream-app"


class ScaffoldError(ConfigurationError, FileExistsError):
    pass


@dataclass(frozen=True)
class Scaffold:
    """What init wrote: the project's directory and name, and its files (relative paths)."""

    directory: Path
    name: str
    files: list[Path]


def project_name(directory: Path) -> str:
    """The directory's name as a project, consumer group and package-like name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", directory.resolve().name.lower()).strip("-._")
    return name or DEFAULT_NAME


def _templates(folder: Traversable, under: Path = Path()) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found.update(_templates(entry, under / entry.name))
        elif entry.name.endswith(SUFFIX):
            found[under / entry.name.removesuffix(SUFFIX)] = entry.read_text(encoding="utf-8")
    return found


def render(name: str) -> dict[Path, str]:
    """The project's files (relative path -> text), in a stable order."""
    templates = _templates(files(__name__).joinpath("templates"))
    return {path: templates[path].replace(PLACEHOLDER, name) for path in sorted(templates)}


def scaffold(directory: Path, name: str | None = None) -> Scaffold:
    """Write a new project into `directory` (created if missing). Refuses, writing nothing,
    when any of its files exists already."""
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} is a file: init needs a directory for the project")
    name = name or project_name(directory)
    rendered = render(name)
    existing = [str(directory / path) for path in rendered if (directory / path).exists()]
    if existing:
        raise ScaffoldError(
            f"init would overwrite {', '.join(existing)}: nothing written (move them away, "
            "or give init another directory)"
        )
    for path, text in rendered.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return Scaffold(directory, name, list(rendered))

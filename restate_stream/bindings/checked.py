"""Load a bindings file and check it against the worker app it names: what every command that
deploys or serves bindings starts with."""

from __future__ import annotations

from pathlib import Path

from restate_stream.bindings.app_check import AppImportError, check_against_app, import_app
from restate_stream.bindings.loader import load_bindings
from restate_stream.bindings.model import BindingsError, BindingsFile, Problem


def load_checked(path: Path, *, check_app: bool = True) -> BindingsFile:
    """The file's own checks, then (when it names a worker app) the bindings against the app."""
    spec = load_bindings(path)
    if check_app and spec.worker is not None:
        try:
            _, services = import_app(spec.worker.app)
        except AppImportError as exc:
            line, column = spec.worker.app_position
            raise BindingsError([Problem(str(path), line, column, "worker.app", str(exc))]) from exc
        check_against_app(spec, services)
    return spec

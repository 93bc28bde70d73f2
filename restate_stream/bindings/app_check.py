"""Checks bindings against the Restate app that will serve them, before anything is deployed.

restate-sdk 1.3 keeps no public handle on the services once `restate.app(...)` has built the
ASGI callable: the Endpoint lives only in that closure's `endpoint` cell. import_app looks
there (through wrappers that close over an `app`), and falls back to scanning the module for
Service / VirtualObject / Workflow instances.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import restate

from restate_stream.bindings.model import BindingsError, BindingsFile, Problem
from restate_stream.errors import ConfigurationError
from restate_stream.runtime._sdk import Endpoint
from restate_stream.runtime.signature import BATCH_INPUT, input_problem
from restate_stream.windows.loading import ReducerImportError, load_reducer
from restate_stream.windows.settings import MERGING

AnyService = restate.Service | restate.VirtualObject | restate.Workflow

_SERVICE_TYPES = (restate.Service, restate.VirtualObject, restate.Workflow)
# Closure variables that hold the wrapped app in common ASGI wrappers.
_WRAPPED_NAMES = ("app", "application", "asgi_app", "wrapped", "inner")


class AppImportError(ConfigurationError, ImportError):
    pass


def _suggest(word: str, candidates: Iterable[str], what: str) -> str:
    names = sorted(candidates)
    close = difflib.get_close_matches(word, names, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; {what}: {', '.join(names)}" if names else f"; it has no {what}"


def check_against_app(spec: BindingsFile, services: Iterable[AnyService]) -> None:
    """Every binding's handler exists in `services` with a kind its `keyed` setting needs."""
    by_name = {service.name: service for service in services}
    problems: list[Problem] = []
    for i, binding in enumerate(spec.bindings):
        if binding.provided:
            problems.extend(_provided_problems(spec, i, by_name))
            continue
        service = by_name.get(binding.service)
        if service is None:
            hint = _suggest(binding.service, by_name, "the app's services are")
            message = f"service '{binding.service}' is not in the app{hint}"
            problems.append(spec.problem(i, "handler", message))
            continue
        handlers: dict[str, Any] = service.handlers
        if binding.handler not in handlers:
            hint = _suggest(binding.handler, handlers, "its handlers are")
            message = f"service '{binding.service}' has no handler '{binding.handler}'{hint}"
            problems.append(spec.problem(i, "handler", message))
            continue
        # Restate routes a record to a virtual object or workflow by the record key, and to a
        # plain service without one; `keyed` must say the same. Shared handlers are fine: they
        # just don't get the per-key ordering exclusive ones do.
        is_keyed = isinstance(service, restate.VirtualObject | restate.Workflow)
        if binding.keyed and not is_keyed:
            message = (
                f"keyed binding needs a virtual object or workflow handler, but "
                f"'{binding.service}' is a plain service; use one, or set keyed: false"
            )
            problems.append(spec.problem(i, "handler", message))
        elif not binding.keyed and is_keyed:
            kind = "virtual object" if isinstance(service, restate.VirtualObject) else "workflow"
            message = (
                f"'{binding.service}' is a {kind}, which Restate always addresses by the record "
                f"key; set keyed: true, or point at a plain service handler"
            )
            problems.append(spec.problem(i, "keyed", message))
        if handlers[binding.handler].arity < 2:
            message = (
                f"'{binding.service}/{binding.handler}' takes no input; a binding delivers "
                "each record as the handler's input (ctx, event)"
            )
            problems.append(spec.problem(i, "handler", message))
        kind = handler_kind(service, binding.handler)
        if binding.batch is not None:
            problems.extend(_batch_problems(spec, i, service, kind))
        if binding.dedupe and kind in ("shared", "service"):
            message = (
                "dedupe keeps the seen event ids in the object's state, which needs an "
                f"exclusive object handler; '{binding.service}/{binding.handler}' is {kind}"
            )
            problems.append(spec.problem(i, "dedupe", message))
    if problems:
        raise BindingsError(problems)


def _provided_problems(spec: BindingsFile, i: int, by_name: dict[str, AnyService]) -> list[Problem]:
    """A window or table binding: restate-stream serves its object under the binding's name,
    which the app must leave free; a window's reducer and the handler it emits to must exist."""
    binding = spec.bindings[i]
    what = "window" if binding.window is not None else "table"
    problems = []
    if binding.service in by_name:
        message = (
            f"the app has a service '{binding.service}', the name restate-stream serves this "
            f"{what} binding's object under; rename the binding or the service"
        )
        problems.append(spec.problem(i, "name", message))
    window = binding.window
    if window is not None and window.reducer is not None:
        try:
            reducer = load_reducer(window.reducer)
        except ReducerImportError as exc:
            problems.append(spec.problem(i, "window", f"reducer: {exc}"))
        else:
            if window.type in MERGING and reducer.merge is None:
                message = (
                    f"reducer: {window.reducer!r} has no merge; a {window.type} window combines "
                    "partial results (Reducer(initial=..., reduce=..., merge=...))"
                )
                problems.append(spec.problem(i, "window", message))
    if window is not None and window.to_handler is not None:
        service_name, handler = window.to_handler.split("/")
        service = by_name.get(service_name)
        if service is None or handler not in service.handlers:
            names = by_name if service is None else service.handlers
            hint = _suggest(service_name if service is None else handler, names, "known are")
            message = f"to_handler: the app has no handler '{window.to_handler}'{hint}"
            problems.append(spec.problem(i, "window", message))
        elif window.emit == "current" and handler_kind(service, handler) == "workflow":
            message = (
                f"to_handler: '{window.to_handler}' is a workflow's run handler, which runs once "
                "per window; emit: current would run it only for a window's first update "
                "(emit: final, or an object handler)"
            )
            problems.append(spec.problem(i, "window", message))
    return problems


def _batch_problems(spec: BindingsFile, i: int, service: AnyService, kind: str) -> list[Problem]:
    """A batched binding keeps its high-water offsets in object state: an exclusive object
    handler, whose input is a list of events."""
    binding = spec.bindings[i]
    name = f"'{binding.service}/{binding.handler}'"
    if not isinstance(service, restate.VirtualObject) or kind != "exclusive":
        what = kind if isinstance(service, restate.VirtualObject) else "not a virtual object"
        message = f"batch needs an exclusive virtual object handler; {name} is {what}"
        return [spec.problem(i, "batch", message)]
    handler = service.handlers[binding.handler]
    fn = getattr(handler.fn, "fn", handler.fn)  # the user function of a bound handler
    if input_problem(fn, batched=True) is not None:
        message = f"batch needs {name} to take {BATCH_INPUT} as its input"
        return [spec.problem(i, "batch", message)]
    return []


def handler_kind(service: AnyService, handler: str) -> str:
    """ "exclusive", "shared" or "workflow" for object/workflow handlers; "service" otherwise."""
    kind = service.handlers[handler].kind
    return str(kind) if kind is not None else "service"


def import_app(path: str, *, app_dir: str | Path = ".") -> tuple[Any, list[AnyService]]:
    """Import "module.path:attribute" and find the Restate services it serves.

    `app_dir` goes first on sys.path (if not there yet), as a console script does not put the
    working directory there the way `python -m` does.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise AppImportError(f'expected "module.path:attribute", got {path!r}')
    directory = str(Path(app_dir).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppImportError(
                f"cannot import {module_name!r}: no module named {exc.name!r} "
                f"(searched from {directory})"
            ) from exc
        raise AppImportError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppImportError(f"importing {module_name!r} failed: {exc!r}") from exc
    app: Any = module
    for part in attr.split("."):
        if not hasattr(app, part):
            names = [n for n in dir(app) if not n.startswith("_")]
            hint = _suggest(part, names, "names there are")
            raise AppImportError(f"{module_name!r} has no attribute {attr!r}{hint}")
        app = getattr(app, part)
    services = find_services(app, module)
    if not services:
        raise AppImportError(
            f"found no Restate services in {path!r}: expected restate.app([...]), an "
            "Endpoint, a service, or a module defining Service/VirtualObject/Workflow objects"
        )
    return app, services


def find_services(app: Any, module: ModuleType | None = None) -> list[AnyService]:
    """The services behind `app`; else those defined at the top level of `module`."""
    found = _services_of(app, depth=0, seen=set())
    if found is None and module is not None:
        found = [v for v in vars(module).values() if isinstance(v, _SERVICE_TYPES)]
    unique: dict[str, AnyService] = {}
    for service in found or []:
        unique.setdefault(service.name, service)
    return list(unique.values())


def find_endpoint(app: Any) -> Endpoint | None:
    """The Endpoint behind `app` (restate.app keeps it in its closure), or None."""
    found: list[Endpoint] = []

    def look(obj: Any, depth: int, seen: set[int]) -> None:
        if id(obj) in seen or depth > 8 or found:
            return
        seen.add(id(obj))
        if isinstance(obj, Endpoint):
            found.append(obj)
            return
        for inner in _inner(obj):
            look(inner, depth + 1, seen)

    look(app, 0, set())
    return found[0] if found else None


def _inner(obj: Any) -> list[Any]:
    """What `obj` wraps: closure variables and attributes that hold an app."""
    candidates: list[Any] = []
    if isinstance(obj, FunctionType) and obj.__closure__:
        cells = dict(zip(obj.__code__.co_freevars, obj.__closure__, strict=True))
        for name in ("endpoint", *_WRAPPED_NAMES):
            if name in cells:
                try:
                    candidates.append(cells[name].cell_contents)
                except ValueError:  # an empty cell
                    continue
    for name in ("__wrapped__", *_WRAPPED_NAMES):
        inner = getattr(obj, name, None)
        if inner is not None and not isinstance(obj, ModuleType):
            candidates.append(inner)
    return candidates


def _services_of(obj: Any, depth: int, seen: set[int]) -> list[AnyService] | None:
    if id(obj) in seen or depth > 8:
        return None
    seen.add(id(obj))
    if isinstance(obj, Endpoint):
        return list(obj.services.values())
    if isinstance(obj, _SERVICE_TYPES):
        return [obj]
    if isinstance(obj, list | tuple) and obj and all(isinstance(s, _SERVICE_TYPES) for s in obj):
        return list(obj)
    for candidate in _inner(obj):
        found = _services_of(candidate, depth + 1, seen)
        if found is not None:
            return found
    return None

"""The objects restate-stream itself serves for bindings without a handler of the app's: one
per window binding (windows/objects.py) and per table binding (tables/objects.py), each named
after its binding. The worker adds them to the user's app; a test serving an app itself adds
`provided_services(spec, services)` to the services it passes to `restate.app`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import restate

from restate_stream.bindings import Binding, BindingsFile
from restate_stream.bindings.app_check import AnyService, find_endpoint, handler_kind
from restate_stream.errors import RestateStreamError
from restate_stream.runtime._sdk import Endpoint
from restate_stream.runtime.publisher import Publisher
from restate_stream.tables.objects import table_object
from restate_stream.windows.loading import ReducerImportError, load_reducer
from restate_stream.windows.objects import WindowObject

__all__ = [
    "ReducerImportError",
    "load_reducer",
    "provided_services",
    "publisher_for",
    "serve_provided",
]


def publisher_for(spec: BindingsFile, b: Binding, publishers: dict[str, Publisher]) -> Publisher:
    """The one publisher of `b`'s cluster, shared with bind() (one producer per process)."""
    if b.cluster not in publishers:
        publishers[b.cluster] = Publisher(spec.clusters[b.cluster].properties)
    return publishers[b.cluster]


def provided_services(
    spec: BindingsFile,
    services: Iterable[AnyService] = (),
    publishers: dict[str, Publisher] | None = None,
) -> list[restate.VirtualObject]:
    """The objects of the file's window and table bindings (`services`: the app's, to tell
    whether a window's `to_handler` is keyed). Pass the same `publishers` to bind()."""
    publishers = publishers if publishers is not None else {}
    by_name = {s.name: s for s in services}
    provided = []
    for b in spec.bindings:
        if b.window is not None:
            reducer = load_reducer(b.window.reducer) if b.window.reducer else None
            target, handler = b.window.to_handler.split("/") if b.window.to_handler else ("", "")
            service = by_name.get(target)
            keyed = not isinstance(service, restate.Service)
            run = (
                isinstance(service, restate.Workflow)
                and handler in service.handlers
                and handler_kind(service, handler) == "workflow"
            )
            window = WindowObject(b, publisher_for(spec, b, publishers), reducer, keyed, run)
            provided.append(window.service)
        elif b.table:
            provided.append(table_object(b))
    return provided


def serve_provided(app: Any, provided: list[restate.VirtualObject]) -> None:
    """Add `provided` to the endpoint behind the user's `app` (restate.app([...]) or an
    Endpoint): the SDK reads its services per request, discovery included."""
    if not provided:
        return
    endpoint: Endpoint | None = find_endpoint(app)
    if endpoint is None:
        names = ", ".join(s.name for s in provided)
        raise RestateStreamError(
            f"the bindings' windows and tables ({names}) are served by restate-stream's own "
            "objects, but the worker app is not a restate.app(...) or Endpoint it can add them "
            "to; add restate_stream.runtime.provided.provided_services(spec) to your app"
        )
    endpoint.bind(*provided)

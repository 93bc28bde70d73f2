"""The dashboard's Starlette application: routes, the host check, the sampler's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from restate_stream.errors import RestateStreamError
from restate_stream.ui import actions, binding, overview, topic
from restate_stream.ui.context import Dashboard, templates
from restate_stream.ui.guard import AccessCheck, Guard
from restate_stream.ui.sampler import Sampler
from restate_stream.ui.sources import Source


def create_app(
    source: Source,
    guard: Guard,
    *,
    sampler: Sampler | None = None,
    interval: float = 5.0,
    sample_in_background: bool = True,
) -> Starlette:
    """The dashboard for `source`. With sample_in_background the statuses are read every
    `interval` seconds while the app runs; otherwise when a page finds none yet (tests)."""
    sampler = sampler or Sampler(source.statuses, interval=interval)
    board = Dashboard(
        source,
        sampler,
        guard,
        templates(),
        refresh_seconds=interval,
        bindings_path=str(source.spec().path),
    )

    async def user_error(request: Request, exc: Exception) -> Response:
        """A RestateStreamError (the bindings file turned invalid, an engine unreachable)
        is said on a page, as the CLI says it, not as a bare 500."""
        return board.render(
            request, "refused.html", status_code=500, heading="Error", reason=str(exc)
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(sampler.run()) if sample_in_background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes = [
        Route("/", overview.overview_page),
        Route("/fragments/overview", overview.overview_fragment),
        Route("/bindings/{name}", binding.binding_page),
        Route("/fragments/bindings/{name}", binding.binding_fragment),
        Route("/bindings/{name}/redrive", actions.redrive, methods=["POST"]),
        Route("/bindings/{name}/pause", actions.confirm_pause, methods=["GET"]),
        Route("/bindings/{name}/resume", actions.confirm_pause, methods=["GET"]),
        Route("/bindings/{name}/pause", actions.pause_or_resume, methods=["POST"]),
        Route("/bindings/{name}/resume", actions.pause_or_resume, methods=["POST"]),
        Route("/topics/{topic}", topic.topic_page),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessCheck, guard=guard)],
        exception_handlers={RestateStreamError: user_error},
        lifespan=lifespan,
    )
    app.state.dashboard = board
    return app

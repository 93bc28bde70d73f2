"""The overview: every binding with its state, lag, records/s, invocations and dead letters."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from restate_stream.ui.context import dashboard


async def _values(request: Request) -> dict[str, Any]:
    board = dashboard(request)
    statuses = await board.sampler.current()
    sampler = board.sampler
    rows = [
        {"status": s, "rates": sampler.rates(s.name), "lags": sampler.lags(s.name)}
        for s in statuses or []
    ]
    return {"rows": rows, "loaded": statuses is not None}


async def overview_page(request: Request) -> Response:
    return dashboard(request).render(request, "overview.html", **await _values(request))


async def overview_fragment(request: Request) -> Response:
    return dashboard(request).render(request, "_overview_table.html", **await _values(request))

"""A binding's page: lag per partition, stuck keys, dead letters, and its actions."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from connectors.secrets import split_userinfo
from restate_stream._util.text import one_line
from restate_stream.bindings import Binding
from restate_stream.control.status import BindingStatus
from restate_stream.dlq import Listing, SourceHistory
from restate_stream.errors import RestateStreamError
from restate_stream.ui.context import Dashboard, dashboard

RECENT_LETTERS = 50  # dead letters shown unless the page asks for more
MOST_LETTERS = 1000  # at most (a page of 10,000 rows is 8 MB; `dlq list` lists them all)
PREVIEW = 120  # characters of a value shown


def find(board: Dashboard, name: str) -> Binding:
    for binding in board.source.spec().bindings:
        if binding.name == name:
            return binding
    raise HTTPException(404, f"no binding named {name!r} in the bindings file")


def invocation_url(admin_url: str, invocation_id: str) -> str:
    """The invocation in Restate's own UI (served by its admin API under /ui)."""
    return f"{admin_url.rstrip('/')}/ui/invocations/{quote(invocation_id, safe='')}"


def coordinates_field(history: SourceHistory) -> str:
    """A source record as one form value: partition and offset after the last two '/'."""
    topic, partition, offset = history.source.coordinates
    return f"{topic}/{partition}/{offset}"


def preview(history: SourceHistory) -> str:
    letter = history.latest.letter
    if letter.value is not None:
        return one_line(letter.value, PREVIEW)
    raw = base64.b64decode(letter.value_base64 or "")
    return one_line(f"base64:{base64.b64encode(raw[:PREVIEW]).decode()}", PREVIEW)


@dataclass
class Letters:
    listing: Listing | None
    error: str | None
    shown: list[SourceHistory]
    total: int
    unresolved: int


async def _letters(board: Dashboard, binding: Binding, limit: int) -> Letters | None:
    if binding.dead_letter is None:
        return None
    try:
        listing = await board.source.listing(binding.name)
    except RestateStreamError as exc:  # e.g. the topic does not exist yet: said on the page
        return Letters(None, str(exc), [], 0, 0)
    # Most recent first (by their latest letter), unresolved ones before resolved ones.
    ordered = sorted(
        listing.records, key=lambda h: (h.resolved, -h.latest.letter.failed_at.timestamp())
    )
    return Letters(listing, None, ordered[:limit], len(listing.records), len(listing.unresolved))


def status_of(statuses: list[BindingStatus] | None, name: str) -> BindingStatus | None:
    return next((s for s in statuses or [] if s.name == name), None)


async def _live(board: Dashboard, binding: Binding) -> dict[str, Any]:
    statuses = await board.sampler.current()
    return {
        "binding": binding,
        "status": status_of(statuses, binding.name),
        "rates": board.sampler.rates(binding.name),
        "lags": board.sampler.lags(binding.name),
        # Links into Restate's UI: the browser asks for any credentials itself.
        "admin_url": split_userinfo(board.source.spec().restate.admin_url)[0],
        "invocation_url": invocation_url,
    }


async def binding_page(request: Request) -> Response:
    board = dashboard(request)
    binding = find(board, request.path_params["name"])
    try:
        limit = min(max(int(request.query_params.get("limit", RECENT_LETTERS)), 1), MOST_LETTERS)
    except ValueError:
        limit = RECENT_LETTERS
    return board.render(
        request,
        "binding.html",
        letters=await _letters(board, binding, limit),
        limit=limit,
        most=MOST_LETTERS,
        preview=preview,
        coordinates_field=coordinates_field,
        **await _live(board, binding),
    )


async def binding_fragment(request: Request) -> Response:
    board = dashboard(request)
    binding = find(board, request.path_params["name"])
    return board.render(request, "_binding_live.html", **await _live(board, binding))

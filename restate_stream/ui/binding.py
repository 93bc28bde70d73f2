"""A binding's page: lag per partition, stuck keys, dead letters, and its actions; for a table
or window binding, what its object holds (contents.py)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
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
from restate_stream.errors import RestateStreamError, describe
from restate_stream.ui.contents import Contents
from restate_stream.ui.context import Dashboard, dashboard

RECENT_LETTERS = 50  # dead letters shown unless the page asks for more
MOST_LETTERS = 1000  # at most (a page of 10,000 rows is 8 MB; `dlq list` lists them all)
PREVIEW = 120  # characters of a value shown
CONTENT_KEYS = 50  # keys of a table or window binding shown (`keys=` asks for up to 500)
MOST_CONTENT_KEYS = 500


def find(board: Dashboard, name: str) -> Binding:
    for binding in board.source.spec().bindings:
        if binding.name == name:
            return binding
    raise HTTPException(404, f"no binding named {name!r} in the bindings file")


def clock(ms: int) -> str:
    """An epoch-millisecond instant as UTC date and time, to the millisecond."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d} UTC"


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


@dataclass
class Held:
    """What a table or window binding's object holds (contents.py), or why it is unknown."""

    contents: Contents | None
    error: str | None
    limit: int


async def _held(board: Dashboard, binding: Binding, limit: int) -> Held | None:
    if binding.window is None and not binding.table:
        return None
    try:
        return Held(await board.source.contents(binding.name, limit), None, limit)
    except RestateStreamError as exc:  # said on the page, like the dead letters' errors
        return Held(None, describe(exc), limit)


def _bounded(request: Request, name: str, default: int, most: int) -> int:
    try:
        return min(max(int(request.query_params.get(name, default)), 1), most)
    except ValueError:
        return default


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
    limit = _bounded(request, "limit", RECENT_LETTERS, MOST_LETTERS)
    keys = _bounded(request, "keys", CONTENT_KEYS, MOST_CONTENT_KEYS)
    return board.render(
        request,
        "binding.html",
        held=await _held(board, binding, keys),
        most_keys=MOST_CONTENT_KEYS,
        clock=clock,
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

"""The actions: redrive (one source record or all), pause and resume (confirmed first).

Each is a POST form checked by the guard; the result is shown on a page of its own with the
way back, and the sampler reads the statuses again at once.
"""

from __future__ import annotations

from collections import Counter
from typing import get_args
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from restate_stream.dlq import Outcome
from restate_stream.errors import RestateStreamError
from restate_stream.ui.binding import find
from restate_stream.ui.context import Dashboard, dashboard
from restate_stream.ui.guard import TOKEN_FIELD
from restate_stream.ui.sources import Coordinates

MAX_FORM = 64 * 1024  # bytes: the forms here carry a token and one source record


async def limited_body(request: Request, limit: int) -> bytes | None:
    """The request's body; None when it is larger than `limit` bytes: refused by its
    Content-Length before a byte is read, and a chunked one no longer read past the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _checked_form(board: Dashboard, request: Request) -> dict[str, str] | Response:
    """The form's fields (url-encoded, as the pages send them), once the guard lets it in."""
    body = await limited_body(request, MAX_FORM)
    if body is None:
        reason = f"form too large (at most {MAX_FORM // 1024} KB)"
        return board.render(request, "refused.html", status_code=413, reason=reason)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    form = {name: values[-1] for name, values in fields.items()}
    refused = board.guard.refuse_action(request, form.get(TOKEN_FIELD))
    if refused is not None:
        return board.render(request, "refused.html", status_code=403, reason=refused)
    return form


def parse_coordinates(value: str) -> Coordinates:
    """`topic/partition/offset` (a topic name may not contain '/', but be safe: the last two)."""
    topic, partition, offset = value.rsplit("/", 2)
    return (topic, int(partition), int(offset))


async def redrive(request: Request) -> Response:
    board = dashboard(request)
    binding = find(board, request.path_params["name"])
    form = await _checked_form(board, request)
    if isinstance(form, Response):
        return form
    only: set[Coordinates] | None = None
    source = form.get("source")
    if source:
        try:
            only = {parse_coordinates(source)}
        except ValueError:
            return board.render(
                request, "refused.html", status_code=400, reason=f"not a source record: {source!r}"
            )
    try:
        results = await board.source.redrive(binding.name, only)
    except RestateStreamError as exc:
        return board.render(
            request, "result.html", status_code=502, binding=binding, title="Redrive failed",
            error=str(exc), results=[], counts={},
        )  # fmt: skip
    board.sampler.wake()
    found = Counter(r.outcome for r in results)
    counts = {o: found[o] for o in get_args(Outcome) if found[o]}
    title = f"Redrive of {'one source record' if only else 'all unresolved dead letters'}"
    return board.render(
        request, "result.html", binding=binding, title=title, error=None, results=results,
        counts=counts,
    )  # fmt: skip


async def confirm_pause(request: Request) -> Response:
    board = dashboard(request)
    binding = find(board, request.path_params["name"])
    paused = request.url.path.endswith("/pause")
    return board.render(request, "confirm.html", binding=binding, paused=paused)


async def pause_or_resume(request: Request) -> Response:
    board = dashboard(request)
    binding = find(board, request.path_params["name"])
    paused = request.url.path.endswith("/pause")
    form = await _checked_form(board, request)
    if isinstance(form, Response):
        return form
    verb = "Pause" if paused else "Resume"
    try:
        outcome = await board.source.set_paused(binding.name, paused)
    except RestateStreamError as exc:
        return board.render(
            request, "result.html", status_code=502, binding=binding, title=f"{verb} failed",
            error=str(exc), results=[], counts={},
        )  # fmt: skip
    board.sampler.wake()
    return board.render(
        request, "applied.html", binding=binding, paused=paused, outcome=outcome, verb=verb,
        path=str(board.source.spec().path),
    )  # fmt: skip

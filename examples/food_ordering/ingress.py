"""Calls into Restate's ingress from inside handlers, the way an outside system would.

The payment provider and the restaurant's point of sale stand in for external systems: the
order workflow reaches the provider over HTTP (with an idempotency key, as with a real
payment API) through the SDK's ingress client, and the restaurant answers the workflow's
awakeable through the ingress callback endpoint (which that client does not cover). Both run
inside `ctx.run`, so a replay never repeats a completed call.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
import restate
from restate.context import HandlerType

from examples.food_ordering.settings import ingress_url

In = TypeVar("In")
Out = TypeVar("Out")


class IngressError(RuntimeError):
    """A retryable failure (network, 5xx): `ctx.run` retries it by its policy."""


async def object_call(
    handler: HandlerType[In, Out], key: str, arg: In, *, idempotency_key: str | None = None
) -> Out:
    """Call a virtual object's handler; errors are sorted as in `post`."""
    try:
        async with restate.create_client(ingress_url()) as client:
            return await client.object_call(handler, key, arg, idempotency_key=idempotency_key)
    except restate.HttpError as exc:
        if exc.status_code >= 500:
            raise IngressError(f"{handler.__name__} on {key!r}: {exc} {exc.body}") from exc
        raise restate.TerminalError(_message(exc.body or exc.message), exc.status_code) from exc
    except httpx.HTTPError as exc:
        raise IngressError(f"{handler.__name__} on {key!r}: {exc!r}") from exc


async def post(
    path: str,
    *,
    json: Any = None,
    text: str | None = None,
    idempotency_key: str | None = None,
) -> Any:
    """POST to the ingress; 4xx raises TerminalError (retrying cannot help), 5xx IngressError."""
    headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
    if text is not None:
        headers["content-type"] = "text/plain"
    async with httpx.AsyncClient(base_url=ingress_url(), timeout=10.0) as client:
        try:
            response = await client.post(path, json=json, content=text, headers=headers)
        except httpx.HTTPError as exc:
            raise IngressError(f"POST {path}: {exc!r}") from exc
    if response.status_code >= 500:
        raise IngressError(f"POST {path}: {response.status_code} {response.text[:200]}")
    if response.status_code >= 400:
        raise restate.TerminalError(_message(response.text), response.status_code)
    return response.json() if response.content else None


def _message(text: str) -> str:
    """The ingress's error message out of its JSON error body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)

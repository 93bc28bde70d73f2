"""Calls into Restate's ingress from inside handlers, the way an outside system would.

The payment provider and the restaurant's point of sale stand in for external systems: the
order workflow reaches the provider over HTTP (with an idempotency key, as with a real
payment API) and the restaurant answers the workflow's awakeable through the ingress
callback endpoint. Both run inside `ctx.run`, so a replay never repeats a completed call.
"""

from __future__ import annotations

from typing import Any

import httpx
import restate

from examples.food_ordering.settings import ingress_url


class IngressError(RuntimeError):
    """A retryable failure (network, 5xx): `ctx.run` retries it by its policy."""


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
        raise restate.TerminalError(_message(response), response.status_code)
    return response.json() if response.content else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)

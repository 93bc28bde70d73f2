"""Protection of the dashboard's actions against other web sites.

A page of another site can make the browser POST a form here (cross-site request forgery), or
resolve its own name to 127.0.0.1 and read the pages (DNS rebinding). So:
- every request must name an allowed host in its Host header (the address the dashboard was
  started on; any host when it listens on every interface, where the names are unknown);
- an action (POST) must carry the per-process token, which only pages served here contain, and
  its Origin (else Referer) must be the dashboard itself: the host the request came to.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from restate_stream._util.ports import is_loopback

TOKEN_FIELD = "csrf_token"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host headers the dashboard answers; None: any (it listens on every interface)."""
    if host in WILDCARD_HOSTS:
        return None
    names = {host}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "::1"}
    return frozenset(f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names)


class Guard:
    def __init__(self, hosts: Iterable[str] | None, token: str | None = None) -> None:
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.token = token or secrets.token_urlsafe(32)

    def host_allowed(self, host: str) -> bool:
        return self.hosts is None or host.lower() in self.hosts

    def refuse_action(self, request: Request, token: object) -> str | None:
        """Why this POST is refused; None: it may go ahead."""
        if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
            return "the form's token is missing or wrong (reload the dashboard page)"
        host = request.headers.get("host", "").lower()
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            origin = request.headers.get("referer")
        if not origin:
            return "the request names no Origin or Referer"
        sent_from = urlsplit(origin).netloc.lower()
        if sent_from != host:
            return f"the request comes from {sent_from or origin!r}, not from this dashboard"
        return None


class HostCheck:
    """ASGI middleware: refuse requests whose Host header the guard does not allow."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not self.guard.host_allowed(host):
                response = PlainTextResponse(
                    f"host {host!r} is not this dashboard's address", status_code=421
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

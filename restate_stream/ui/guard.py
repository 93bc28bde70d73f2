"""Protection of the dashboard against other web sites and, off loopback, other people.

A page of another site can make the browser POST a form here (cross-site request forgery), or
resolve its own name to the dashboard's address and read the pages (DNS rebinding). So:
- every request must name an allowed host in its Host header: the loopback names when the
  dashboard listens on loopback, else the names given with --allowed-host (a rebinding page
  sends its own name);
- with an access token (required off loopback), every request carries it: HTTP basic auth
  (any user name, the token as password; what a browser asks for by itself) or
  `Authorization: Bearer <token>`, compared in constant time;
- an action (POST) must carry the per-process form token, which only pages served here
  contain, and its Origin (else Referer) must be the dashboard itself: the host the request
  came to. Basic credentials are sent by the browser whichever site causes the request, so
  this check stays with them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from restate_stream._util.ports import is_loopback

TOKEN_FIELD = "csrf_token"
REALM = "restate-stream dashboard"


def _with_port(name: str, port: int) -> str:
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


def allowed_hosts(host: str, port: int, names: Iterable[str] = ()) -> frozenset[str]:
    """The Host headers the dashboard answers: its own address (with the loopback names when
    that is loopback; a wildcard address has no name of its own) and `names`, each either
    `name` (any port: behind a proxy the browser may name none) or `name:port`."""
    own = set() if host in ("0.0.0.0", "::", "") else {host}
    if is_loopback(host):
        own |= {"127.0.0.1", "localhost", "::1"}
    return frozenset({_with_port(n, port) for n in own} | {n.lower() for n in names})


def _host_name(host: str) -> str:
    """The Host header without its port ("[::1]:80" -> "::1")."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def presented_token(authorization: str) -> str | None:
    """The token in an Authorization header: a Bearer token, or a basic auth password."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class Guard:
    def __init__(
        self,
        hosts: Iterable[str] | None,
        token: str | None = None,
        *,
        access_token: str | None = None,
    ) -> None:
        """`hosts` None: any Host (tests); `token`: the form token (random by default);
        `access_token`: what every request must present (None: none asked for)."""
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.token = token or secrets.token_urlsafe(32)
        self.access_token = access_token

    def host_allowed(self, host: str) -> bool:
        if self.hosts is None:
            return True
        host = host.lower()
        return host in self.hosts or _host_name(host) in self.hosts

    def authorized(self, authorization: str | None) -> bool:
        if self.access_token is None:
            return True
        presented = presented_token(authorization or "")
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.access_token.encode())

    def refuse_action(self, request: Request, token: object) -> str | None:
        """Why this POST is refused; None: it may go ahead."""
        # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), self.token.encode()
        ):
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


class AccessCheck:
    """ASGI middleware: refuse requests whose Host header the guard does not allow (421), then
    those without the access token (401, asking the browser for it)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            response = None
            if not self.guard.host_allowed(host):
                message = f"host {host!r} is not one of this dashboard's names (--allowed-host)"
                response = PlainTextResponse(message, status_code=421)
            elif not self.guard.authorized(authorization):
                response = PlainTextResponse(
                    "this dashboard asks for its access token (any user name, the token as "
                    "password)",
                    status_code=401,
                    headers={"www-authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                )
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

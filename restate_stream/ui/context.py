"""What every page needs: the data source, the sampler, the guard and the templates."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from restate_stream.ui.charts import sparkline
from restate_stream.ui.guard import TOKEN_FIELD, Guard
from restate_stream.ui.sampler import Sampler
from restate_stream.ui.sources import Source

STATE_CLASSES = {
    "active": "ok",
    "batched": "ok",
    "consumer": "ok",
    "paused": "warn",
    "missing": "bad",
}


def security_headers(nonce: str) -> dict[str, str]:
    """No framing by other sites (clickjacking: a click on a framed "Redrive all" would pass
    the token and Origin checks), scripts and requests from this dashboard only."""
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        f"script-src 'nonce-{nonce}'; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "content-security-policy": policy,
        "x-frame-options": "DENY",
        "referrer-policy": "same-origin",
        "x-content-type-options": "nosniff",
    }


def headline(error: str | None) -> str:
    """An error's first line: the message before a traceback (the rest is shown on demand)."""
    text = (error or "").strip()
    return (
        text.split("Traceback (most recent call last)", 1)[0].splitlines()[0].strip()
        if text
        else ""
    )


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("restate_stream.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["headline"] = headline
    env.globals.update(sparkline=sparkline, state_classes=STATE_CLASSES, token_field=TOKEN_FIELD)
    return env


@dataclass
class Dashboard:
    source: Source
    sampler: Sampler
    guard: Guard
    env: Environment
    refresh_seconds: float = 5.0
    bindings_path: str = ""  # shown on every page (read once: the file may turn invalid)

    def render(
        self, request: Request, name: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)  # the page's own inline script runs, no other
        page = self.env.get_template(name).render(
            request=request,
            nonce=nonce,
            token=self.guard.token,
            bindings_path=self.bindings_path,
            refresh_ms=int(self.refresh_seconds * 1000),
            sampled_at=self.sampler.latest_at,
            sample_error=self.sampler.error,
            **values,
        )
        return HTMLResponse(page, status_code=status_code, headers=security_headers(nonce))


def dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found

"""Serving the dashboard: hypercorn (already the worker's other server) on one address."""

from __future__ import annotations

import asyncio
import logging

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(app: Starlette, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (hypercorn installs the handlers)."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    # The root logger's (the CLI configures it): errors once, no second "Running on" line.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2.0
    asyncio.run(serve(app, config, mode="asgi"))  # type: ignore[arg-type]

"""Serving the dashboard: hypercorn (already the worker's other server) on one address."""

from __future__ import annotations

import asyncio
import logging
import threading

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette

from restate_stream._util.ports import wait_until_listening


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class BackgroundDashboard:
    """The dashboard served from a thread with its own event loop (`restate-stream dev` runs
    it beside the engines and the worker); `stop()` ends it."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not wait_until_listening(self.port, self.host, timeout=timeout):
            raise RuntimeError(f"the dashboard did not listen on {url(self.host, self.port)}")

    def _run(self) -> None:
        config = Config()
        config.bind = [f"{self.host}:{self.port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 2.0
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        trigger = self._stop.wait
        loop.run_until_complete(serve(self.app, config, shutdown_trigger=trigger))  # type: ignore[arg-type]
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def run(app: Starlette, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (hypercorn installs the handlers)."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    # The root logger's (the CLI configures it): errors once, no second "Running on" line.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2.0
    asyncio.run(serve(app, config, mode="asgi"))  # type: ignore[arg-type]

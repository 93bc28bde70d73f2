"""Serving a Restate ASGI app over h2c (Restate dials prior-knowledge HTTP/2).

The worker serves with granian (Rust HTTP/2, uvloop) by default, or hypercorn (pure Python
h2, uvloop): see SERVERS. In-process servers for tests and benchmarks (BackgroundAppServer)
use hypercorn, which runs inside an event loop of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP2Settings
from granian.log import LogLevels
from granian.server.mp import MPServer
from hypercorn.asyncio import serve
from hypercorn.config import Config

from restate_stream._util.ports import LOOPBACK, accepts_connections, free_ports, port_is_free
from restate_stream.bindings.schema import WorkerServer
from restate_stream.runtime._hypercorn import patch_hypercorn
from restate_stream.runtime.publisher import close_publishers

patch_hypercorn()


def without_lifespan_warnings(
    app: Any,
    *,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """Answer ASGI lifespan events for apps (like restate.app) that ignore them.

    hypercorn otherwise logs a lifespan error at every start; at shutdown the durable
    publishers' producers are flushed and closed. `startup`/`shutdown` run in each serving
    process (the batched bindings' consumers start and stop there).
    """

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if startup is not None:
                    await startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if shutdown is not None:
                        await shutdown()
                    await close_publishers()  # flush what handlers produced before exiting
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    return wrapped


ServerName = WorkerServer
SERVERS: tuple[ServerName, ...] = get_args(ServerName)
# Measured by benchmarks/serving_throughput.py (docs/benchmarks.md): granian drains the same
# subscription into the same counter 1.5-2x faster on ~40% of hypercorn's worker CPU per record.
DEFAULT_SERVER: ServerName = "granian"
MAX_CONCURRENT_STREAMS = 1000  # per h2 connection: Restate multiplexes every invocation
GRACEFUL_SECONDS = 10  # in-flight invocations get this long to end after SIGTERM


def granian_server(target: str, host: str, port: int, processes: int) -> MPServer:
    """granian serving the ASGI app at `target` ("module:attribute") in `processes` processes.

    Each process imports `target` itself (spawned, not forked: the parent may run threads).
    HTTP mode auto: h2c with prior knowledge (what Restate dials) and HTTP/1.1 (curl, probes,
    Restate's `--use-http1.1`), as hypercorn serves. granian keeps connections open however
    many requests they carry, and kills a process that has not finished its in-flight
    requests GRACEFUL_SECONDS after SIGTERM.
    """
    return MPServer(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,  # with lifespan: the batched consumers start and stop there
        workers=processes,
        loop=Loops.uvloop,
        http=HTTPModes.auto,
        websockets=False,
        http2_settings=HTTP2Settings(max_concurrent_streams=MAX_CONCURRENT_STREAMS),
        log_level=LogLevels.warning,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )


def hypercorn_config(host: str, port: int, *, log_level: str = "WARNING") -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.loglevel = log_level
    config.accesslog = None
    # Restate multiplexes every invocation over a few long-lived h2c connections. hypercorn's
    # defaults close a connection after 1,000 requests or 5 s idle, which breaks in-flight
    # invocations (Restate sees "broken pipe" and retries after its inactivity timeout).
    config.keep_alive_max_requests = 2**31
    config.keep_alive_timeout = 300.0
    config.h2_max_concurrent_streams = MAX_CONCURRENT_STREAMS
    config.graceful_timeout = float(GRACEFUL_SECONDS)
    return config


class BackgroundAppServer:
    """An ASGI app served on a loopback port from a thread with its own event loop.

    For tests and benchmarks in one process with the code that drives them; the worker
    runner (`restate-stream worker`) serves in the foreground instead.
    """

    def __init__(self, app: Any, port: int | None = None, host: str = LOOPBACK) -> None:
        self.app = app
        self.host = host
        self.port = port if port is not None else free_ports(1)[0]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if not port_is_free(self.port, self.host):
            raise RuntimeError(f"port {self.port} for the app server is already in use")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"app-server:{self.port}")
        self._thread.daemon = True
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"app server on {self.uri} did not start within {timeout}s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"app server on {self.uri} failed to start") from self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        config = hypercorn_config(self.host, self.port)

        async def main() -> None:
            assert self._stop is not None
            task = asyncio.ensure_future(
                serve(without_lifespan_warnings(self.app), config, shutdown_trigger=self._stop.wait)
            )
            # hypercorn signals nothing when it is listening: poll the port.
            while not task.done() and not accepts_connections(self.port, self.host):
                await asyncio.sleep(0.01)
            if task.done():
                self._error = task.exception()
            self._ready.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported by start() or stop()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving; raises if the server crashed after it started or will not stop."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        # A closed loop raises RuntimeError: the server has ended by itself.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"app server on {self.uri} did not stop within {timeout}s")
        if self._error is not None and self._ready.is_set():
            error, self._error = self._error, None
            raise RuntimeError(f"app server on {self.uri} failed while serving") from error

"""The Restate SDK's SIGTERM hook no longer keeps granian's serving process from stopping."""

from __future__ import annotations

import asyncio
import os
import signal

from restate.server import install_shutdown_hook

from restate_stream.runtime.granian_sigterm import relay_sigterm_to_granian


async def test_sigterm_reaches_granian_and_the_sdk_once_the_sdk_took_the_signal() -> None:
    loop = asyncio.get_running_loop()
    stops: list[int] = []
    sdk: list[str] = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # granian's set_loop_signals
        loop.add_signal_handler(signum, stops.append, signum)
    try:
        relay_sigterm_to_granian()  # the worker's lifespan startup
        install_shutdown_hook(loop, lambda: sdk.append("notified"))  # the SDK's first request
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # granian's main process terminates it too
        for _ in range(100):
            await asyncio.sleep(0.01)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    # granian heard it (as SIGINT, once: its signal channel holds one stop); the SDK too.
    assert stops == [signal.SIGINT]
    assert sdk and set(sdk) == {"notified"}

"""A granian serving process hears SIGTERM again once the Restate SDK took it on the loop."""

from __future__ import annotations

import asyncio
import os
import signal

import restate

from restate_stream.runtime.granian_signals import relay_sigterm_to_granian
from tests.unit.test_sdk_internals import serve_one


async def test_sigterm_reaches_granian_once_and_the_sdk_after_the_sdk_took_the_signal() -> None:
    loop = asyncio.get_running_loop()
    granian: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # granian's set_loop_signals
        loop.add_signal_handler(signum, granian.append, signum)
    try:
        relay_sigterm_to_granian()  # the worker's lifespan startup
        app = restate.app([restate.Service("Probe")])
        assert (await serve_one(app, "/health"))["status"] == 200  # the SDK takes SIGTERM here
        os.kill(os.getpid(), signal.SIGTERM)  # a supervisor's, to the process group
        os.kill(os.getpid(), signal.SIGTERM)  # granian's main process stopping its workers
        for _ in range(50):
            await asyncio.sleep(0.01)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    # granian heard it as SIGINT, once: its stop channel takes no more than one pending stop.
    assert granian == [signal.SIGINT]

"""granian's serving process stops on SIGTERM, the ASGI lifespan shutdown included, under the
Restate SDK.

A granian serving process stops when its event loop's SIGTERM or SIGINT handler fires (both do
the same): it stops accepting, lets open connections end, then runs the lifespan shutdown (the
consumers commit what Restate accepted and leave their groups, the producers flush). The
Restate SDK takes SIGTERM on that loop for itself at the first request it serves, so granian
would never hear it: the process served on until granian's main process killed it
GRACEFUL_SECONDS later, and the lifespan shutdown never ran.

relay_sigterm_to_granian, called in the serving process's loop (the lifespan startup), joins
the SDK's SIGTERM hooks with one that hands the stop on to granian as SIGINT, which the SDK
leaves alone; the SDK's own hook still runs on the same SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal

from restate_stream.runtime._sdk import on_sigterm


def relay_sigterm_to_granian() -> None:
    relayed = False

    def relay() -> None:
        nonlocal relayed
        # Once, though a supervisor's SIGTERM to the group and granian's own to its serving
        # process both arrive: granian's stop channel (granian 2.8: bounded, of one) takes one
        # stop beyond the one it acts on, and a further one blocks the event loop.
        if not relayed:
            relayed = True
            os.kill(os.getpid(), signal.SIGINT)

    on_sigterm(asyncio.get_running_loop(), relay)

"""Keep granian's serving process stopping gracefully on SIGTERM under the Restate SDK.

granian's serving process stops when its event loop's SIGINT or SIGTERM handler fires: it
stops accepting, lets open connections end, then runs the ASGI lifespan shutdown (the
consumers commit what Restate accepted and leave their groups, the producers flush). The
Restate SDK's ASGI app takes SIGTERM on that loop for itself at the first request it serves
(`restate.server.install_shutdown_hook`: `loop.add_signal_handler`, one handler per signal),
to end its in-flight invocations' input. From then on granian never hears SIGTERM: the
process serves on until granian's main process kills it GRACEFUL_SECONDS later, and the
lifespan shutdown never runs.

`relay_sigterm_to_granian` joins the SDK's own hook list for SIGTERM with a hook that hands
the stop on to granian as SIGINT, which granian handles the same way and the SDK leaves
alone; the SDK's hook still runs on the same SIGTERM. Call it in the serving process's loop
(the lifespan startup).
"""

from __future__ import annotations

import asyncio
import os
import signal

from restate_stream.runtime._sdk import add_sdk_sigterm_hook


def relay_sigterm_to_granian() -> None:
    relayed = False

    def relay() -> None:
        nonlocal relayed
        # Once: granian's signal channel holds one pending stop (a second would block).
        if not relayed:
            relayed = True
            os.kill(os.getpid(), signal.SIGINT)

    # An SDK without the hook list takes no signal from the server: nothing to relay then.
    add_sdk_sigterm_hook(asyncio.get_running_loop(), relay)

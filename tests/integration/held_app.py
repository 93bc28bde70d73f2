"""A handler that stays in flight until the test releases it (a file appears)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import restate

held = restate.Service("Held")


@held.handler()
async def run(ctx: restate.Context, directory: str) -> str:
    here = Path(directory)
    with (here / "started").open("a") as started:
        started.write(f"{os.getpid()}\n")
    # Polls, not ctx.sleep: a durable sleep would suspend the invocation instead of keeping
    # its request in flight, which is what the test stops the worker during.
    for _ in range(1200):
        if (here / "release").exists():
            return "done"
        await asyncio.sleep(0.05)
    return "never released"


app = restate.app([held])

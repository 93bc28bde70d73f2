"""The quickstart's Account plus a probe that records which worker process served each key."""

from __future__ import annotations

import logging
import os
from typing import Any

import restate

from examples.quickstart.app import account

probe = restate.VirtualObject("PidProbe")
log = logging.getLogger("tests.pids_app")


@probe.handler()
async def record(ctx: restate.ObjectContext, value: dict[str, Any]) -> None:
    log.info("probe %s served by pid %d", ctx.key(), os.getpid())
    pids: list[int] = await ctx.get("pids") or []
    ctx.set("pids", [*pids, os.getpid()])


app = restate.app([account, probe])

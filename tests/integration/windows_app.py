"""The app a real worker serves in tests/integration/test_windows_worker.py: the worker adds
restate-stream's window and table objects to it; its own object joins with a table named in
the request (the table binding's name carries the test's run id)."""

from __future__ import annotations

from typing import Any

import restate
from pydantic import BaseModel

from restate_stream.tables import Table


class Lookup(BaseModel):
    table: str
    key: str


joiner = restate.VirtualObject("WindowsWorkerJoiner")


@joiner.handler()
async def lookup(ctx: restate.ObjectContext, request: Lookup) -> dict[str, Any] | None:
    return await Table(request.table, dict[str, Any]).get(ctx, request.key)


app = restate.app([joiner])

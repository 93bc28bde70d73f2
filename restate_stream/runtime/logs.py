"""Worker logging: every line carries the Restate invocation id it was logged under.

Lines logged while a handler replays its journal are dropped (as restate.getLogger does), so
a replay does not repeat what the first attempt already said.
"""

from __future__ import annotations

import logging

from restate_stream.runtime._sdk import current_invocation_id, replaying

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(invocation_id)s] %(message)s"
_MARK = "_restate_stream_handler"


class InvocationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if replaying():
            return False
        record.invocation_id = current_invocation_id() or "-"
        return True


def configure_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr with invocation ids; idempotent (each worker process calls it once)."""
    root = logging.getLogger()
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(InvocationIdFilter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(level)

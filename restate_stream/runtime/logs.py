"""Worker logging: every line carries the Restate invocation id it was logged under, and a
line logged while a bound handler handles a record carries the binding and the record's
topic, partition and offset. Two formats: `text` for people (the default) and `json`, one
object per line, for log pipelines.

Lines logged while a handler replays its journal are dropped (as restate.getLogger does), so
a replay does not repeat what the first attempt already said.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from restate_stream.runtime._sdk import current_invocation_id, replaying
from restate_stream.runtime.event import KafkaCoordinates

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(invocation_id)s] %(message)s"
_MARK = "_restate_stream_handler"

# The binding and record a bound handler is working on (set by it around the record).
_current: ContextVar[tuple[str, KafkaCoordinates | None] | None] = ContextVar(
    "restate_stream_record", default=None
)


@contextlib.contextmanager
def handling(binding: str, coords: KafkaCoordinates | None) -> Iterator[None]:
    """Lines logged inside carry `binding` and the record's coordinates (None: a batch)."""
    token = _current.set((binding, coords))
    try:
        yield
    finally:
        _current.reset(token)


def set_handling(binding: str, coords: KafkaCoordinates | None) -> None:
    """As `handling`, for the rest of the current task: each invocation runs in a task of
    its own, so it does not outlive the invocation."""
    _current.set((binding, coords))


class InvocationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if replaying():
            return False
        record.invocation_id = current_invocation_id() or "-"
        current = _current.get()
        record.binding = current[0] if current else None
        coords = current[1] if current else None
        record.topic = coords.topic if coords else None
        record.partition = coords.partition if coords else None
        record.offset = coords.offset if coords else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, invocation_id and, inside a
    bound handler, binding, topic, partition, offset; `exception` with the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "invocation_id": getattr(record, "invocation_id", None),
        }
        for name in ("binding", "topic", "partition", "offset"):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: int | str = logging.INFO, log_format: str = "text") -> None:
    """Log to stderr with invocation ids; idempotent (each worker process calls it once)."""
    root = logging.getLogger()
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT))
    handler.addFilter(InvocationIdFilter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(level)

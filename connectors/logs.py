"""librdkafka's own log lines go through Python logging, under one logger.

Otherwise librdkafka prints to stderr directly (`%4|...|GETPID|...` while a fresh broker
loads its coordinator), where an application can neither silence nor route them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from connectors.secrets import scrub, secret_values

LIBRDKAFKA = logging.getLogger("connectors.librdkafka")

_NUMBERS = re.compile(r"\d+")


class RepeatedLines(logging.Filter):
    """librdkafka says the same thing again on every retry: a refused login every 300 ms,
    thirty lines before `plan` could say why it failed. A line like the one before it (the
    same but for its numbers) within `window` seconds is counted, not logged; the next line
    logged says how many were left out. Warnings and errors only: debug output is kept whole."""

    def __init__(self, window: float = 60.0) -> None:
        super().__init__()
        self.window = window
        self._lock = threading.Lock()  # librdkafka logs from its own threads
        self._shape: str | None = None
        self._since = 0.0
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # debug asked for (`debug: fetch`, say) is all kept
        text = record.getMessage()
        shape, now = _NUMBERS.sub("#", text), time.monotonic()
        with self._lock:
            if shape == self._shape and now - self._since < self.window:
                self._left_out += 1
                return False
            left_out, self._left_out = self._left_out, 0
            self._shape, self._since = shape, now
        if left_out:
            note = f"left out before it: {left_out} more like the last line"
            record.msg, record.args = f"{text} [{note}]", ()
        return True


LIBRDKAFKA.addFilter(RepeatedLines())


class _ScrubbedLog:
    """librdkafka's log for one client, without that client's secret values: its
    configuration warnings (CONFWARN) quote property values, which may be a secret pasted
    into the wrong property."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        self._scrub = scrub

    def log(self, level: int, msg: str, *args: object) -> None:  # what librdkafka calls
        if LIBRDKAFKA.isEnabledFor(level):
            LIBRDKAFKA.log(level, "%s", self._scrub(msg % args if args else msg))


def with_logger(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Client properties with librdkafka's log routed to the `connectors.librdkafka` logger
    (scrubbed of the client's secret values when it has any)."""
    secrets = secret_values(properties)
    logger = _ScrubbedLog(lambda text: scrub(text, secrets)) if secrets else LIBRDKAFKA
    return {"logger": logger, **properties}


# Where a Kafka client connects: bootstrap servers, or librdkafka properties (SASL/SSL too).
Config = str | Mapping[str, str]


def client_properties(config: Config) -> dict[str, Any]:
    """librdkafka properties for `config`, with the log routed through Python logging."""
    return with_logger({"bootstrap.servers": config} if isinstance(config, str) else config)

"""librdkafka's own log lines go through Python logging, under one logger.

Otherwise librdkafka prints to stderr directly (`%4|...|GETPID|...` while a fresh broker
loads its coordinator), where an application can neither silence nor route them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from connectors.secrets import scrub, secret_values

LIBRDKAFKA = logging.getLogger("connectors.librdkafka")


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

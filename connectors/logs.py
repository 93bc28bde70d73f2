"""librdkafka's own log lines go through Python logging, under one logger.

Otherwise librdkafka prints to stderr directly (`%4|...|GETPID|...` while a fresh broker
loads its coordinator), where an application can neither silence nor route them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LIBRDKAFKA = logging.getLogger("connectors.librdkafka")


def with_logger(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Client properties with librdkafka's log routed to the `connectors.librdkafka` logger."""
    return {"logger": LIBRDKAFKA, **properties}


# Where a Kafka client connects: bootstrap servers, or librdkafka properties (SASL/SSL too).
Config = str | Mapping[str, str]


def client_properties(config: Config) -> dict[str, Any]:
    """librdkafka properties for `config`, with the log routed through Python logging."""
    return with_logger({"bootstrap.servers": config} if isinstance(config, str) else config)

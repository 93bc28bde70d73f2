"""The root of restate-stream's error tree, and the families `connectors` raises in.

A leaf (nothing but Python itself), so every module of both packages imports it without a
cycle: `restate_stream.errors` re-exports these and adds the other families. Each error also
keeps the built-in base it had (ValueError, RuntimeError, ...), so code catching those works.
"""

from __future__ import annotations


class RestateStreamError(Exception):
    """An error whose message is complete for a person: what failed, where, what to do."""


class KafkaClusterError(RestateStreamError):
    """Talking to a Kafka cluster failed: a request refused or unanswered, a client's
    properties refused, records not acknowledged, a topic that cannot be read."""


class RecordFormatError(RestateStreamError):
    """A record does not fit its format or schema: it cannot be decoded or encoded, or its
    schema cannot be fetched from the registry."""

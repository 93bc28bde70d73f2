"""Kafka failures as restate-stream errors: one line naming what failed, where, and why.

librdkafka raises KafkaException around a KafkaError whose repr (`KafkaError{code=...}`)
means little to a person; these turn it into the operation, the topic or group, the
cluster's bootstrap servers and librdkafka's reason in words. Every message goes through
`scrub`: librdkafka quotes rejected property values, which may be a secret's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException

from connectors.base_errors import KafkaClusterError
from connectors.secrets import scrub, secret_values

T = TypeVar("T")


class KafkaAdminError(KafkaClusterError, RuntimeError):
    """A request to a Kafka cluster failed (refused, invalid, not authorised ...)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # librdkafka's error name (TOPIC_ALREADY_EXISTS ...), None if none


class KafkaUnavailableError(KafkaAdminError):
    """No answer from the cluster (down, unreachable, timed out): worth asking again."""


class KafkaClientConfigError(KafkaClusterError, ValueError):
    """librdkafka refused to create a client with the given properties."""


# Errors that say the cluster did not answer, not that it refused the request.
_UNAVAILABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.BROKER_NOT_AVAILABLE,
    }
)


# The cluster answered but refused who is asking: asking again gets the same answer.
_ACCESS_REFUSED = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    }
)


def access_refused(*errors: BaseException | KafkaError | None) -> bool:
    """Whether any of `errors` is an authentication or authorization failure."""
    found = (kafka_error(e) for e in errors if e is not None)
    return any(e is not None and e.code() in _ACCESS_REFUSED for e in found)


def kafka_error(exc: BaseException | KafkaError) -> KafkaError | None:
    """`exc` itself, or the KafkaError a KafkaException carries (None for plain text)."""
    if isinstance(exc, KafkaError):
        return exc
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error if isinstance(error, KafkaError) else None


def reason_text(exc: BaseException | KafkaError) -> str:
    """librdkafka's reason in words: `NAME: text` (`TOPIC_ALREADY_EXISTS: Topic 'orders'
    already exists.`); local errors lose their leading underscore."""
    error = kafka_error(exc)
    if error is None:
        return str(exc) or type(exc).__name__
    name = (error.name() or str(error.code())).lstrip("_")
    text = error.str()
    return f"{name}: {text}" if text and not text.startswith(name) else name


def request_failed(
    what: str,
    servers: str,
    exc: BaseException | KafkaError,
    secrets: list[str] | None = None,
    extra: str = "",
    unavailable: bool | None = None,
) -> KafkaAdminError:
    """The error for a failed request `what` ("creating topic 'orders'") to `servers`, with
    `extra` appended: KafkaUnavailableError when the cluster did not answer (TimeoutError:
    no answer within the caller's wait), KafkaAdminError when it refused; `unavailable`
    decides instead when the caller knows better (a state that passes, a refused login)."""
    error = kafka_error(exc)
    timed_out = isinstance(exc, TimeoutError)
    if unavailable is None:
        unavailable = timed_out or (error is not None and error.code() in _UNAVAILABLE)
    reason = (str(exc) or "no answer in time") if timed_out else reason_text(exc)
    message = scrub(f"{what} on {servers} failed: {reason}{extra}", secrets or [])
    code = error.name().lstrip("_") if error is not None else None
    kind = KafkaUnavailableError if unavailable else KafkaAdminError
    return kind(message, code)


def new_client(
    kind: str, factory: Callable[[dict[str, Any]], T], properties: Mapping[str, Any]
) -> T:
    """`factory(properties)` (a Producer, Consumer, AdminClient); a refused property becomes
    KafkaClientConfigError naming the client `kind` and the servers, with no secret value."""
    try:
        return factory(dict(properties))
    except KafkaException as exc:
        reason = reason_text(exc)
    # Raised outside the except, so librdkafka's unscrubbed exception is neither its cause
    # nor its context (--debug prints the chain).
    servers = properties.get("bootstrap.servers", "?")
    message = f"invalid {kind} properties for Kafka at {servers}: {reason}"
    raise KafkaClientConfigError(scrub(message, secret_values(properties)))

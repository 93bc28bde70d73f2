"""librdkafka failures become one readable line: operation, topic/group, servers, reason."""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors import KafkaAdminError, KafkaClientConfigError, KafkaUnavailableError, TopicAdmin
from connectors.consume import read_topic
from connectors.errors import new_client, reason_text, request_failed
from connectors.group_consumer import GroupConsumer
from connectors.logs import with_logger
from connectors.producer import ConfluentProducer
from connectors.secrets import scrub
from restate_stream.errors import RestateStreamError, describe

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
CANARY = "canary-s3cret-7f3a"
SERVERS = "127.0.0.1:9"
# A secret pasted into the wrong field: librdkafka quotes the value it rejects.
MISPASTED = {"bootstrap.servers": SERVERS, "sasl.password": CANARY, "security.protocol": CANARY}


def refused(code: int, text: str) -> KafkaException:
    return KafkaException(KafkaError(code, text))


def test_reason_names_the_error_then_says_it_in_words() -> None:
    exc = refused(KafkaError.TOPIC_ALREADY_EXISTS, "Topic 'orders' already exists.")
    assert reason_text(exc) == "TOPIC_ALREADY_EXISTS: Topic 'orders' already exists."
    assert reason_text(refused(KafkaError._TIMED_OUT, "Local: Timed out")) == (
        "TIMED_OUT: Local: Timed out"
    )
    assert reason_text(KafkaException("plain text")) == "plain text"


def test_a_refused_request_is_one_line_naming_operation_topic_and_servers() -> None:
    exc = refused(KafkaError.TOPIC_ALREADY_EXISTS, "Topic 'orders' already exists.")
    error = request_failed("creating topic 'orders'", "127.0.0.1:9092", exc)
    assert str(error) == (
        "creating topic 'orders' on 127.0.0.1:9092 failed: "
        "TOPIC_ALREADY_EXISTS: Topic 'orders' already exists."
    )
    assert isinstance(error, RestateStreamError) and not isinstance(error, KafkaUnavailableError)
    assert error.code == "TOPIC_ALREADY_EXISTS"
    policy = refused(KafkaError.POLICY_VIOLATION, "Topic name is reserved")
    assert type(request_failed("creating topic 'x'", SERVERS, policy)) is KafkaAdminError


@pytest.mark.parametrize(
    "exc",
    [
        refused(KafkaError._TIMED_OUT, "Local: Timed out"),
        refused(KafkaError._TRANSPORT, "Local: Broker transport failure"),
        refused(KafkaError.REQUEST_TIMED_OUT, "Request timed out"),
        TimeoutError("no answer within 2s"),
    ],
)
def test_no_answer_is_unavailable_so_readiness_polls_retry_it(exc: BaseException) -> None:
    error = request_failed("describing consumer group 'g'", SERVERS, exc)
    assert isinstance(error, KafkaUnavailableError)
    assert str(error).startswith(f"describing consumer group 'g' on {SERVERS} failed: ")
    assert "\n" not in str(error)


def test_request_errors_never_show_a_secret() -> None:
    exc = refused(KafkaError.SASL_AUTHENTICATION_FAILED, f"bad password {CANARY}")
    error = request_failed("listing topics", SERVERS, exc, [CANARY], f" (last: {CANARY})")
    assert CANARY not in str(error) and "bad password ***" in str(error)


def assert_hidden(caught: pytest.ExceptionInfo[BaseException], kind: str) -> None:
    message = str(caught.value)
    assert message.startswith(f"invalid {kind} properties for Kafka at {SERVERS}: INVALID_ARG:")
    assert 'Invalid value "***" for configuration property "security.protocol"' in message
    # --debug prints the whole traceback: no chained librdkafka text may carry the secret.
    assert CANARY not in "".join(traceback.format_exception(caught.value))


def test_a_rejected_secret_never_appears_when_an_admin_client_is_created() -> None:
    with pytest.raises(KafkaClientConfigError) as caught:
        TopicAdmin(MISPASTED)
    assert_hidden(caught, "Kafka admin client")


def test_a_rejected_secret_never_appears_when_a_consumer_is_created() -> None:
    with pytest.raises(KafkaClientConfigError) as caught:
        read_topic(MISPASTED, "orders", timeout=1.0)
    assert_hidden(caught, "Kafka consumer")


async def test_a_rejected_secret_never_appears_when_a_group_consumer_starts() -> None:
    consumer = GroupConsumer(MISPASTED, "orders", "g")
    try:
        with pytest.raises(KafkaClientConfigError) as caught:
            await consumer.start()
    finally:
        await consumer.close()
    assert_hidden(caught, "Kafka consumer")


def test_a_rejected_secret_never_appears_when_a_producer_is_created() -> None:
    with pytest.raises(KafkaClientConfigError) as caught:
        ConfluentProducer(MISPASTED)
    assert_hidden(caught, "Kafka producer")


@pytest.mark.parametrize("factory", [AdminClient, Consumer, Producer])
def test_one_helper_creates_every_client(factory: type) -> None:
    with pytest.raises(KafkaClientConfigError) as caught:
        new_client("Kafka client", factory, {**MISPASTED, "group.id": "g"})
    assert_hidden(caught, "Kafka client")


# librdkafka cuts its messages at ~256 bytes: a long secret shows only its beginning.
LONG_SECRET = ("long-canary-9d2e-" * 30)[:500]


@pytest.mark.parametrize(
    ("kind", "factory"),
    [
        ("Kafka admin client", AdminClient),
        ("Kafka consumer", Consumer),
        ("Kafka producer", Producer),
    ],
)
def test_a_long_rejected_secret_shows_not_even_its_beginning(kind: str, factory: type) -> None:
    properties = {
        "bootstrap.servers": SERVERS,
        "group.id": "g",
        "sasl.password": LONG_SECRET,
        "security.protocol": LONG_SECRET,
    }
    with pytest.raises(KafkaClientConfigError) as caught:
        new_client(kind, factory, properties)
    shown = "".join(traceback.format_exception(caught.value))
    assert 'Invalid value "***' in str(caught.value)
    assert LONG_SECRET[:12] not in shown, shown


def test_scrub_hides_a_quoted_beginning_of_a_secret_but_not_other_quoted_words() -> None:
    cut = f"Topic 'orders': can't parse \"{LONG_SECRET[:240]}"
    assert scrub(cut, [LONG_SECRET]) == "Topic 'orders': can't parse \"***"
    closed = f"Invalid value '{LONG_SECRET[:30]}' for `x`"
    assert scrub(closed, [LONG_SECRET]) == "Invalid value '***' for `x`"
    assert scrub("'long-ca' is short", [LONG_SECRET]) == "'long-ca' is short"


def whole_chain(error: BaseException) -> str:
    """Every message and traceback of `error` and the exceptions chained to it, printed or
    not (a suppressed context is still an attribute a debugger or a logger may show)."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [repr(seen.args), *traceback.format_exception(seen)]
        seen = seen.__cause__ or seen.__context__
    return "".join(texts)


def test_a_client_config_error_chains_nothing() -> None:
    with pytest.raises(KafkaClientConfigError) as caught:
        new_client("Kafka producer", Producer, MISPASTED)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert CANARY not in whole_chain(caught.value)


def test_a_topic_admin_error_chains_not_librdkafka_unscrubbed_text() -> None:
    admin = TopicAdmin({"bootstrap.servers": SERVERS, "sasl.password": CANARY})
    said = refused(KafkaError.INVALID_CONFIG, f'Invalid value "{CANARY}" for "retention.ms"')

    def refuse() -> None:
        raise said

    with pytest.raises(KafkaAdminError) as sending:
        admin._request("setting retention.ms of topic 'x'", refuse)
    answer: Future[None] = Future()
    answer.set_exception(said)
    with pytest.raises(KafkaAdminError) as answered:
        admin._result(answer, "setting retention.ms of topic 'x'", 1.0)
    for caught in (sending, answered):
        assert caught.value.code == "INVALID_CONFIG"  # the error's name is kept
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        assert CANARY not in whole_chain(caught.value)
        assert 'Invalid value "***"' in str(caught.value)


class StaleMetadata:
    """An AdminClient whose metadata request is answered as a restarted broker may answer."""

    def __init__(self, topics: dict[str, object]) -> None:
        self.topics = topics

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> StaleMetadata:
        return self

    def poll(self, timeout: float) -> int:
        return 0


@pytest.mark.parametrize(
    "topics",
    [
        {},  # no metadata for the topic
        {"orders": SimpleNamespace(error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))},
        {"orders": SimpleNamespace(error=KafkaError(KafkaError.LEADER_NOT_AVAILABLE))},
    ],
)
def test_partition_replicas_without_an_answer_for_the_topic_is_retried_by_waits(
    topics: dict[str, object],
) -> None:
    # kafka_cluster.wait_in_sync polls partition_replicas retrying KafkaUnavailableError only.
    admin = TopicAdmin(SERVERS)
    admin._client = StaleMetadata(topics)  # type: ignore[assignment]
    with pytest.raises(KafkaUnavailableError, match=r"reading the partitions of topic 'orders'"):
        admin.partition_replicas("orders")


def test_a_group_consumer_failure_is_not_blamed_on_the_admin_clients_last_error() -> None:
    admin = TopicAdmin(SERVERS)
    stale = KafkaError(KafkaError._TRANSPORT, "stale-admin-error")
    admin._last_error = stale
    with pytest.raises(KafkaUnavailableError) as caught:
        admin.committed_offsets("g", "orders", 1, timeout=0.2)  # nothing listens: no answer
    assert "reading the committed offsets of consumer group 'g'" in str(caught.value)
    assert "stale-admin-error" not in str(caught.value)
    assert admin._last_error is stale  # kept for the admin client's own next failure


class NoMetadata(StaleMetadata):
    """An AdminClient whose metadata requests fail, telling error_cb `told` first."""

    def __init__(self, admin: TopicAdmin, told: KafkaError | None) -> None:
        super().__init__({})
        self.admin, self.told = admin, told

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> StaleMetadata:
        if self.told is not None:
            self.admin._keep_error(self.told)
        raise refused(KafkaError._TRANSPORT, "Local: Broker transport failure")


@pytest.mark.parametrize(
    "told",
    [
        KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: Invalid password"),
        KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed"),
    ],
)
def test_a_refused_login_is_no_unavailability_so_polls_stop(told: KafkaError) -> None:
    admin = TopicAdmin(SERVERS)
    admin._client = NoMetadata(admin, told)  # type: ignore[assignment]
    with pytest.raises(KafkaAdminError) as caught:
        admin.broker_count()
    assert not isinstance(caught.value, KafkaUnavailableError), caught.value
    assert told.str() in str(caught.value)


def test_a_metadata_request_without_an_answer_stays_unavailable() -> None:
    admin = TopicAdmin(SERVERS)
    admin._client = NoMetadata(admin, KafkaError(KafkaError._TRANSPORT, "Connection refused"))  # type: ignore[assignment]
    with pytest.raises(KafkaUnavailableError):
        admin.topics()


def test_describe_reads_our_errors_whole_and_names_the_type_of_others() -> None:
    ours = KafkaAdminError("creating topic 'x' on 127.0.0.1:9092 failed: TOPIC_ALREADY_EXISTS")
    assert describe(ours) == "creating topic 'x' on 127.0.0.1:9092 failed: TOPIC_ALREADY_EXISTS"
    assert describe(TimeoutError("no answer in 5s")) == "TimeoutError: no answer in 5s"


@pytest.mark.parametrize(
    "module",
    [
        "connectors",
        *sorted(f"connectors.{p.stem}" for p in CONNECTORS.glob("*.py") if p.stem != "__init__"),
        "restate_stream",
    ],
)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    # connectors.errors imports restate_stream, whose package imports connectors.producer:
    # whichever is imported first, no module may need a name of a half-initialised one.
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"`import {module}` first failed:\n{result.stderr}"


def test_librdkafka_log_lines_of_a_client_with_secrets_are_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """librdkafka's CONFWARN quotes a property's value: a secret pasted into the wrong
    property (here sasl.mechanism) must not reach the log."""
    properties = {
        "bootstrap.servers": "127.0.0.1:1",
        "sasl.password": "CANARY-IN-THE-LOG",
        "sasl.mechanism": "CANARY-IN-THE-LOG",
        "security.protocol": "plaintext",
    }
    with caplog.at_level(logging.DEBUG, logger="connectors.librdkafka"):
        producer = Producer(with_logger(properties))
        producer.poll(0.5)
        producer.flush(0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.librdkafka"]
    assert any("sasl.mechanism" in line for line in lines), lines  # the warning was logged
    assert not any("CANARY-IN-THE-LOG" in line for line in lines), lines


def test_a_refused_asynchronous_commit_is_logged_with_its_partitions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = GroupConsumer({"bootstrap.servers": "127.0.0.1:9"}, "orders", "g")
    assert consumer.properties["on_commit"] == consumer._commit_answered
    accepted = TopicPartition("orders", 0, 7)
    # What librdkafka hands the callback (TopicPartition's error cannot be set from Python).
    refused: Any = SimpleNamespace(
        topic="orders", partition=1, offset=40, error=KafkaError(KafkaError.ILLEGAL_GENERATION)
    )
    with caplog.at_level(logging.WARNING, logger="connectors.group_consumer"):
        consumer._commit_answered(None, [accepted])  # accepted: nothing said
        consumer._commit_answered(None, [accepted, refused])
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("g: commit of orders p1@40 refused: ")

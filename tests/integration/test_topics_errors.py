"""Kafka refusing a topic request, on the real broker: one readable line, never a traceback
or a `KafkaError{code=...}`; a secret in a rejected property never shows."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from connectors import KafkaAdminError, KafkaClientConfigError, KafkaUnavailableError, TopicAdmin
from restate_stream.control.admin import AdminClient
from restate_stream.stack import LocalStack
from restate_stream.testing import bindings_yaml, drop_cluster, run_cli

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
CANARY = "canary-s3cret-51c9"


def test_replication_beyond_the_brokers_names_topic_factor_and_servers(
    restate_stream_stack: LocalStack,
) -> None:
    servers = restate_stream_stack.bootstrap_servers
    admin = TopicAdmin(servers)
    topic = f"rf3-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaAdminError) as caught:
        admin.create_topic(topic, 1, replication_factor=3)
    error = caught.value
    assert not isinstance(error, KafkaUnavailableError)  # refused, not unanswered
    assert error.code == "INVALID_REPLICATION_FACTOR"
    assert str(error).startswith(
        f"creating topic {topic!r} with 1 partition(s) and replication factor 3 on {servers} "
        "failed: INVALID_REPLICATION_FACTOR: "
    ), str(error)
    assert "\n" not in str(error) and "KafkaError{" not in str(error)
    assert topic not in admin.topics()


def test_other_requests_name_what_they_did(restate_stream_stack: LocalStack) -> None:
    servers = restate_stream_stack.bootstrap_servers
    admin = TopicAdmin(servers)
    topic = f"errs-{uuid.uuid4().hex[:8]}"
    assert admin.create_topic(topic, 2)
    assert not admin.create_topic(topic, 2)  # already there: not an error
    with pytest.raises(KafkaAdminError, match=rf"growing topic '{topic}' to 1 partition\(s\) on "):
        admin.add_partitions(topic, 1)  # Kafka cannot shrink a topic
    with pytest.raises(KafkaAdminError) as caught:
        admin.set_topic_config(topic, {"cleanup.policy": "no-such-policy"})
    assert str(caught.value).startswith(
        f"setting cleanup.policy of topic {topic!r} on {servers} failed: "
    )
    admin.delete_topic(topic)
    with pytest.raises(KafkaAdminError) as missing:
        admin.delete_topic(topic)
    assert str(missing.value).startswith(
        f"deleting topic {topic!r} on {servers} failed: UNKNOWN_TOPIC_OR_PART: "
    )
    # A name that never existed: right after the delete, metadata may still list `topic`.
    never = f"never-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaAdminError, match=f"topic {never!r} on {servers} failed: the topic"):
        admin.group_lag("g", never)


async def test_apply_reports_the_refused_topic_on_one_line(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """apply goes on reporting what it applied: exit 1, the refused change one line."""
    run = uuid.uuid4().hex[:8]
    topic, cluster = f"rf3-cli-{run}", f"c-{run}"
    servers = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: servers},
            topics={topic: {"cluster": cluster, "partitions": 1, "replication_factor": 3}},
        )
    )
    try:
        done = run_cli("apply", "-f", str(path), cwd=REPO)
    finally:
        await drop_cluster(restate_admin, cluster)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "KafkaError{" not in done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("[failed]")]
    assert len(failed) == 1, done.stderr
    assert (
        f": creating topic {topic!r} with 1 partition(s) and replication factor 3 on {servers} "
        "failed: INVALID_REPLICATION_FACTOR: "
    ) in failed[0]


async def test_plan_with_a_rejected_property_exits_2_on_one_line_without_the_secret(
    restate_stream_stack: LocalStack, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    cluster = f"c-{run}"
    servers = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    # The password pasted into security.protocol as well: librdkafka quotes what it rejects.
    properties = {
        "bootstrap.servers": servers,
        "sasl.password": "${KAFKA_PW}",
        "security.protocol": "${KAFKA_PW}",
    }
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: properties},
            topics={f"t-{run}": {"cluster": cluster, "partitions": 1}},
        )
    )
    done = run_cli("plan", "-f", str(path), cwd=REPO, env={"KAFKA_PW": CANARY})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: invalid Kafka admin client properties for Kafka at {servers}: INVALID_ARG: "
        'Invalid value "***" for configuration property "security.protocol"'
    ]
    assert CANARY not in done.stdout + done.stderr
    # The same client, made in-process, raises the same error (not librdkafka's own).
    with pytest.raises(KafkaClientConfigError):
        TopicAdmin({**properties, "sasl.password": CANARY, "security.protocol": CANARY})

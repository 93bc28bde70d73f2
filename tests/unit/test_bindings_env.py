"""A problem about a value taken from an environment variable names the variable, never its value.

A bindings file can name any variable, a secret too (`partitions: ${KAFKA_PW}`, by mistake or
not); the value stays out of every message the loader writes, whichever check finds it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from restate_stream.bindings import BindingsError, parse_bindings

FILE = Path("conf/bindings.yaml")
VALUE = "hunter2"  # passes as a binding, topic, cluster or group name: only rules catch it
ENV = {"KAFKA_PW": VALUE}
CLUSTER = "kafka: {clusters: {local: {bootstrap.servers: b}}}\n"
BINDING = "  - {name: a, topic: t, handler: S/h}\n"


def said(text: str) -> str:
    with pytest.raises(BindingsError) as raised:
        parse_bindings(textwrap.dedent(text), FILE, ENV)
    return str(raised.value)


def test_a_type_error_names_the_variable_and_where() -> None:
    message = said(CLUSTER + "topics:\n  t: {partitions: '${KAFKA_PW}'}\n")
    assert message == (
        "conf/bindings.yaml:3:19: topics.t.partitions: expected an integer >= 1; "
        "got '${KAFKA_PW}' (from the environment; its value is not shown)"
    )


def test_text_around_the_reference_is_shown_as_written() -> None:
    message = said(CLUSTER + "bindings:\n  - {name: 'Pre-${KAFKA_PW}', topic: t, handler: S/h}\n")
    assert "got 'Pre-${KAFKA_PW}' (from the environment; its value is not shown)" in message
    assert VALUE not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            CLUSTER + "bindings:\n  - {name: '${KAFKA_PW}', topic: t, handler: S/h}\n"
            "  - {name: '${KAFKA_PW}', topic: u, handler: S/h}\n",
            "duplicate binding name '${KAFKA_PW}' (first at line 3)",
            id="duplicate-name",
        ),
        pytest.param(
            CLUSTER + "bindings:\n  - {name: a, topic: t, handler: S/h, cluster: '${KAFKA_PW}'}\n",
            "unknown cluster '${KAFKA_PW}' (not under kafka.clusters)",
            id="unknown-cluster",
        ),
        pytest.param(
            "kafka: {clusters: {x: {bootstrap.servers: b}, y: {bootstrap.servers: b}}}\n"
            "bindings:\n  - {name: a, topic: '${KAFKA_PW}', handler: S/h}\n",
            "say which one topic '${KAFKA_PW}' is on",
            id="ambiguous-cluster",
        ),
        pytest.param(
            "kafka: {clusters: {x: {bootstrap.servers: b}, y: {bootstrap.servers: b}}}\n"
            "topics:\n  hunter2: {cluster: x}\n"
            "bindings:\n  - {name: a, topic: '${KAFKA_PW}', handler: S/h, cluster: y}\n",
            "topic '${KAFKA_PW}' is declared on cluster 'x' under topics: (line 3), not 'y'",
            id="topic-on-another-cluster",
        ),
        pytest.param(
            CLUSTER + "bindings:\n  - {name: '${KAFKA_PW}', topic: t, handler: S/h}\n"
            "  - {name: b, topic: u, handler: S/h, group: restate-stream.hunter2}\n",
            "consumer group 'restate-stream.hunter2' is already used by binding '${KAFKA_PW}'",
            id="default-group-of-a-substituted-name",
        ),
        pytest.param(
            CLUSTER
            + "bindings:\n"
            + BINDING
            + "  - {name: b, topic: '${KAFKA_PW}', handler: S/h, group: g}\n"
            + "  - {name: c, topic: '${KAFKA_PW}', handler: S/h, group: h}\n",
            "binding 'b' (line 4) already delivers kafka://local/${KAFKA_PW} to service://S/h",
            id="same-route",
        ),
        pytest.param(
            CLUSTER + "bindings:\n  - {name: a, topic: t, handler: S/h, format: avro,"
            " schema: '${KAFKA_PW}.avsc'}\n",
            "schema file not found: conf/${KAFKA_PW}.avsc",
            id="rule-quoting-the-value",
        ),
        pytest.param(
            CLUSTER + "bindings:\n  - name: a\n    topic: t\n    handler: S/h\n"
            "    batch: {max_records: '${KAFKA_PW}'}\n",
            "got '${KAFKA_PW}' (from the environment; its value is not shown)",
            id="batch-bound",
        ),
    ],
)
def test_no_check_shows_the_value(text: str, expected: str) -> None:
    message = said(text)
    assert expected in message
    assert VALUE not in message.replace("'restate-stream.hunter2'", "")  # written so


def test_the_group_named_after_a_substituted_name_is_shown_as_written() -> None:
    message = said(
        CLUSTER
        + "bindings:\n  - {name: b, topic: u, handler: S/h, group: restate-stream.hunter2}\n"
        "  - {name: '${KAFKA_PW}', topic: t, handler: S/h}\n"
    )
    assert "consumer group 'restate-stream.${KAFKA_PW}' is already used by binding 'b'" in message


def test_a_default_is_shown_it_is_written_in_the_file() -> None:
    message = said(CLUSTER + "topics:\n  t: {partitions: '${UNSET:-four}'}\n")
    assert message.endswith("topics.t.partitions: expected an integer >= 1; got 'four'")


def test_a_url_password_written_around_a_reference_stays_hidden() -> None:
    message = said(
        CLUSTER + "bindings:\n  - {name: a, topic: t, handler: S/h,"
        " schema_registry: 'htp://u:written-pw@${KAFKA_PW}'}\n"
    )
    assert "got 'htp://u:***@${KAFKA_PW}' (from the environment" in message
    assert "written-pw" not in message

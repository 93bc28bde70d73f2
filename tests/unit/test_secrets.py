"""What counts as a secret, and each place that shows configuration keeping it out."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_core import ErrorDetails

from connectors import KafkaUnavailableError, TopicAdmin
from connectors.schema_registry import SchemaRegistryClient, SchemaRegistryError
from connectors.secrets import (
    REDACTED,
    is_secret,
    redact_properties,
    redact_url,
    scrub,
    secret_values,
    split_userinfo,
)
from restate_stream._util.ports import free_ports
from restate_stream.bindings import parse_bindings
from restate_stream.bindings._yaml import read_yaml
from restate_stream.bindings.loader import _shown
from restate_stream.bindings.model import BindingsError, KafkaClusterSpec
from restate_stream.control.admin import KafkaCluster
from restate_stream.control.plan import CreateCluster, UpdateCluster
from restate_stream.stack.kafka import (
    KafkaPorts,
    KafkaStartError,
    SaslPlainListener,
    server_properties,
)
from restate_stream.testing import SchemaRegistryStub

CANARY = "canary-0f1e2d3c"
SASL = {
    "bootstrap.servers": "127.0.0.1:9092",
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "app",
    "sasl.password": CANARY,
}


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.jaas.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.pem",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "basic.auth.user.info",
        "schema.registry.basic.auth.user.info",
        "SASL_PASSWORD",
        "ssl.keystore.key",  # the private key's PEM, for Java clients
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret(key)


@pytest.mark.parametrize(
    "key",
    [
        "bootstrap.servers",
        "sasl.username",
        "sasl.mechanism",
        "security.protocol",
        "ssl.key.location",
        "ssl.ca.location",
        "sasl.oauthbearer.token.endpoint.url",
        "sasl.oauthbearer.client.id",
        "group.id",
        "ssl.keystore.location",
        "keyed",
    ],
)
def test_not_secret_keys(key: str) -> None:
    assert not is_secret(key)


def test_redact_properties_hides_secrets_and_url_passwords() -> None:
    shown = redact_properties({**SASL, "registry": f"https://u:{CANARY}@reg:8081/x"})
    assert shown["sasl.password"] == REDACTED
    assert shown["registry"] == f"https://u:{REDACTED}@reg:8081/x"
    assert shown["sasl.username"] == "app" and shown["bootstrap.servers"] == "127.0.0.1:9092"
    assert CANARY not in repr(shown)


def test_secret_values_and_scrub() -> None:
    values = secret_values({**SASL, "url": "http://u:p%40ss@h", "logger": object()})
    assert set(values) == {CANARY, "p%40ss"}
    assert scrub(f"bad value {CANARY!r}", values) == f"bad value '{REDACTED}'"


def test_userinfo_is_split_off_a_url() -> None:
    assert split_userinfo("http://u:p%40ss@h:1/a") == ("http://h:1/a", ("u", "p@ss"))
    assert split_userinfo("http://h:1/a") == ("http://h:1/a", None)
    assert redact_url("http://h:1/a") == "http://h:1/a"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"https://{CANARY}@reg:8081/x", f"https://{REDACTED}@reg:8081/x"),  # a token
        (f"https://u:{CANARY}@reg", f"https://u:{REDACTED}@reg"),
        (f"https://u:p@{CANARY}@reg", f"https://u:{REDACTED}@reg"),  # urlsplit's last @
        (
            f"cannot reach 'https://{CANARY}@a/x?q=b@c', http://u:{CANARY}@b and mail@host",
            f"cannot reach 'https://{REDACTED}@a/x?q=b@c', http://u:{REDACTED}@b and mail@host",
        ),
        ("https://u:@h/a@b", "https://u:@h/a@b"),  # nothing to hide
    ],
)
def test_redact_url_hides_passwords_and_tokens_in_any_text(text: str, shown: str) -> None:
    assert redact_url(text) == shown


def test_a_token_in_a_url_is_a_secret_value() -> None:
    assert secret_values({"url": f"https://{CANARY}@reg"}) == [CANARY]


def test_reprs_of_cluster_specs_and_changes_hide_secrets() -> None:
    for value in (
        KafkaClusterSpec("c", dict(SASL)),
        KafkaCluster("c", dict(SASL)),
        CreateCluster("c", dict(SASL)),
        UpdateCluster("c", dict(SASL), ("sasl.password",)),
    ):
        assert CANARY not in repr(value) and REDACTED in repr(value), repr(value)


def test_yaml_never_shows_a_secret_value_in_a_message() -> None:
    doc = read_yaml(f"kafka: {{sasl.password: {CANARY}}}", {})
    assert CANARY not in doc.written[("kafka", "sasl.password")].shown


def test_a_bad_registry_url_is_reported_without_its_password() -> None:
    text = """\
kafka: {clusters: {c: {bootstrap.servers: x}}}
bindings:
  - {name: a, topic: t, handler: S/h, schema_registry: "htp://u:${PW}@reg"}
"""
    with pytest.raises(BindingsError) as caught:
        parse_bindings(text, Path("bindings.yaml"), {"PW": CANARY})
    assert "got 'htp://u:***@reg'" in str(caught.value)
    assert CANARY not in str(caught.value)


def test_registry_basic_auth_from_the_url_stays_out_of_errors() -> None:
    registry = SchemaRegistryStub({7: {"type": "string"}}, auth=("u", CANARY))
    registry.start()
    try:
        url = registry.url.replace("http://", f"http://u:{CANARY}@")
        with SchemaRegistryClient(url) as client:
            assert CANARY not in client.url
            assert client.schema_by_id(7) is not None  # the password did authenticate
            with pytest.raises(SchemaRegistryError) as missing:
                client.schema_by_id(99)
        assert missing.value.status == 404 and CANARY not in str(missing.value)
        wrong = registry.url.replace("http://", "http://u:wrong-pw@")
        with SchemaRegistryClient(wrong) as client, pytest.raises(SchemaRegistryError) as refused:
            client.schema_by_id(7)
        assert refused.value.status == 401 and "wrong-pw" not in str(refused.value)
        assert registry.unauthorized == 1
    finally:
        registry.stop()


def test_topic_admin_errors_name_the_broker_and_hide_secrets() -> None:
    (closed,) = free_ports(1)
    admin = TopicAdmin({**SASL, "bootstrap.servers": f"127.0.0.1:{closed}"})
    with pytest.raises(KafkaUnavailableError) as caught:
        admin.topics(timeout=1.0)
    message = str(caught.value)
    assert f"listing topics (waited 1s) on 127.0.0.1:{closed} failed: " in message
    assert "last client error" in message and CANARY not in message


def test_server_properties_add_a_sasl_listener_only_when_asked(tmp_path: Path) -> None:
    ports = KafkaPorts(19092, 19093)
    plain = server_properties(tmp_path, ports)
    assert "SASL" not in plain and "sasl" not in plain
    sasl = server_properties(tmp_path, ports, SaslPlainListener(19094, {"app": CANARY}))
    lines = sasl.splitlines()
    listeners = "PLAINTEXT://127.0.0.1:19092,SASL_PLAINTEXT://127.0.0.1:19094"
    assert f"listeners={listeners},CONTROLLER://127.0.0.1:19093" in lines
    assert f"advertised.listeners={listeners}" in lines
    assert "inter.broker.listener.name=PLAINTEXT" in lines
    assert (
        "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security"
        f'.plain.PlainLoginModule required user_app="{CANARY}";'
    ) in lines
    assert [line for line in lines if line not in plain.splitlines()] == [
        line for line in lines if "sasl" in line.lower()
    ], "nothing else changes"


def test_sasl_passwords_needing_escapes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KafkaStartError, match="without quotes"):
        SaslPlainListener(1, {"app": 'a"b'}).properties()


def test_values_the_reader_did_not_record_are_shown_without_secrets() -> None:
    def error(value: object) -> ErrorDetails:
        return {"type": "string_type", "loc": (), "msg": "", "input": value}

    assert _shown(("kafka", "clusters", "c", "sasl.password"), error(CANARY)) == (
        "a secret (not shown)"
    )
    url = f"http://u:{CANARY}@h"
    assert _shown(("bindings", 0, "schema_registry"), error(url)) == "'http://u:***@h'"
    assert _shown(("bindings", 0, "topic"), error(7)) == "7"

"""bindings.yaml loading: defaults, interpolation, and line-accurate problems for bad input."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from restate_stream.bindings import (
    BindingsError,
    BindingsFile,
    Problem,
    load_bindings,
    parse_bindings,
    parse_duration,
)

FILE = Path("conf/bindings.yaml")

# Line 1..4; bindings written after it start at line 5.
HEADER = """\
kafka:
  clusters:
    local: {bootstrap.servers: "127.0.0.1:9092"}
bindings:
"""


def parse(text: str, env: dict[str, str] | None = None, path: Path = FILE) -> BindingsFile:
    return parse_bindings(textwrap.dedent(text), path, env or {})


def problems(text: str, env: dict[str, str] | None = None, path: Path = FILE) -> list[Problem]:
    with pytest.raises(BindingsError) as raised:
        parse(text, env, path)
    return raised.value.problems


def only_problem(text: str, env: dict[str, str] | None = None, path: Path = FILE) -> Problem:
    found = problems(text, env, path)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# --- happy paths ----------------------------------------------------------------------------


def test_minimal_file_gets_every_default() -> None:
    spec = parse(
        HEADER
        + """\
  - name: driver-locations
    topic: driver-updates
    handler: driver-digital-twin/handle_location
"""
    )
    assert spec.restate.admin_url == "http://127.0.0.1:9070"
    assert spec.restate.ingress_url == "http://127.0.0.1:8080"
    assert spec.worker is None
    assert spec.topics == {}
    (binding,) = spec.bindings
    assert binding.cluster == "local"  # the only cluster
    assert (binding.service, binding.handler) == ("driver-digital-twin", "handle_location")
    assert binding.keyed is True
    assert binding.format == "json"
    assert binding.schema is None
    assert binding.avro_wire == "plain"
    assert binding.start == "earliest"
    assert binding.group is None and binding.dead_letter is None and binding.retry is None
    assert binding.paused is False
    assert binding.options == {}
    assert (binding.line, binding.column) == (5, 5)
    assert binding.position("handler") == (7, 14)
    assert binding.source == "kafka://local/driver-updates"
    assert binding.sink == "service://driver-digital-twin/handle_location"


def test_full_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas/location.avsc").write_text('{"type": "string"}')
    path = tmp_path / "bindings.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            restate: {admin_url: "http://restate:9070", ingress_url: "http://restate:8080"}
            kafka:
              clusters:
                local:
                  bootstrap.servers: "${KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
                  sasl.password: "${KAFKA_PASSWORD}"
                  enable.idempotence: true
                  retries: 5
                other: {metadata.broker.list: "b:9092"}
            topics:
              driver-updates:
                cluster: other
                partitions: 4
                replication_factor: 1
                config: {retention.ms: 86400000}
            worker:
              app: "examples.food_ordering.app:app"
              uri: http://127.0.0.1:9081
              processes: 2
              identity_keys: ["publickeyv1_abc"]
            bindings:
              - name: driver-locations
                topic: driver-updates
                handler: driver-digital-twin/handle_location
                format: avro
                schema: schemas/location.avsc
                avro_wire: confluent
                start: latest
                group: food-ordering.driver-locations
                dead_letter: driver-updates.dlq
                retry: {max_attempts: 5, initial_interval: 200ms, max_interval: 10s, factor: 2}
                paused: true
                keyed: false
                options: {some.option: 1}
            """
        )
    )
    spec = load_bindings(path, env={"KAFKA_PASSWORD": "s3cret"})
    assert spec.path == path
    assert spec.restate.admin_url == "http://restate:9070"
    assert spec.clusters["local"].properties == {
        "bootstrap.servers": "127.0.0.1:9092",
        "sasl.password": "s3cret",
        "enable.idempotence": "true",
        "retries": "5",
    }
    topic = spec.topics["driver-updates"]
    assert (topic.cluster, topic.partitions, topic.replication_factor) == ("other", 4, 1)
    assert topic.config == {"retention.ms": "86400000"}
    assert spec.worker is not None
    assert spec.worker.app == "examples.food_ordering.app:app"
    assert (spec.worker.uri, spec.worker.processes) == ("http://127.0.0.1:9081", 2)
    assert spec.worker.identity_keys == ["publickeyv1_abc"]
    (b,) = spec.bindings
    assert b.cluster == "other"  # from topics:
    assert b.schema == tmp_path / "schemas/location.avsc"
    assert (b.format, b.avro_wire, b.start, b.keyed, b.paused) == (
        "avro",
        "confluent",
        "latest",
        False,
        True,
    )
    assert b.group == "food-ordering.driver-locations"
    assert b.dead_letter == "driver-updates.dlq"
    assert b.retry is not None
    assert b.retry.max_attempts == 5
    assert b.retry.initial_interval == timedelta(milliseconds=200)
    assert b.retry.max_interval == timedelta(seconds=10)
    assert b.retry.factor == 2.0
    assert b.options == {"some.option": "1"}


def test_interpolation_default_override_and_escape() -> None:
    text = """\
    kafka:
      clusters:
        local:
          bootstrap.servers: "${KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
          client.id: "pre-${EMPTY:-fallback}-$${NOT_A_VAR}-${SET}"
    """
    spec = parse(text, env={"SET": "x", "EMPTY": ""})
    props = spec.clusters["local"].properties
    assert props["bootstrap.servers"] == "127.0.0.1:9092"
    assert props["client.id"] == "pre-fallback-${NOT_A_VAR}-x"
    spec = parse(text, env={"SET": "x", "KAFKA_BOOTSTRAP": "kafka:29092"})
    assert spec.clusters["local"].properties["bootstrap.servers"] == "kafka:29092"


def test_interpolated_typed_fields_take_yaml_types() -> None:
    spec = parse(
        """\
        kafka: {clusters: {local: {bootstrap.servers: b}}}
        topics:
          t: {partitions: "${PARTITIONS:-4}"}
        bindings:
          - name: b
            topic: t
            handler: S/h
            paused: ${PAUSED}
            retry: {initial_interval: "${I}"}
        """,
        env={"PAUSED": "true", "I": "1.5s"},
    )
    assert spec.topics["t"].partitions == 4
    assert spec.topics["t"].cluster == "local"  # single cluster
    assert spec.bindings[0].paused is True
    assert spec.bindings[0].retry is not None
    assert spec.bindings[0].retry.initial_interval == timedelta(seconds=1.5)


def test_cluster_comes_from_declared_topic_when_several_clusters() -> None:
    spec = parse(
        """\
        kafka:
          clusters:
            a: {bootstrap.servers: a}
            b: {bootstrap.servers: b}
        topics:
          t: {cluster: b}
        bindings:
          - {name: from-topic, topic: t, handler: S/h}
          - {name: explicit, topic: u, cluster: a, handler: S/h}
        """
    )
    assert [b.cluster for b in spec.bindings] == ["b", "a"]


def test_merge_keys_are_honoured() -> None:
    spec = parse(
        HEADER
        + """\
  - &base {name: one, topic: t, handler: S/h, format: string}
  - {<<: *base, name: two, topic: u}
"""
    )
    assert [(b.name, b.topic, b.format) for b in spec.bindings] == [
        ("one", "t", "string"),
        ("two", "u", "string"),
    ]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("200ms", timedelta(milliseconds=200)),
        ("1.5s", timedelta(seconds=1.5)),
        ("10s", timedelta(seconds=10)),
        ("2m", timedelta(minutes=2)),
        ("1h", timedelta(hours=1)),
        ("3", None),  # a unit is required
        (0.25, None),
        (7, None),
        ("fast", None),
        ("10 parsecs", None),
        (True, None),
        (-1, None),
    ],
)
def test_parse_duration(written: object, expected: timedelta | None) -> None:
    assert parse_duration(written) == expected


# --- problems -------------------------------------------------------------------------------


def test_bad_yaml_syntax_reports_yamls_position() -> None:
    p = only_problem(HEADER + "  - name: a\n    topic: [t\n")
    assert (p.line, p.field) == (7, "")
    assert "invalid YAML" in p.message


def test_bad_yaml_indentation() -> None:
    p = only_problem("kafka:\n  clusters: {}\n bindings: []\n")
    assert p.line == 3
    assert "invalid YAML" in p.message


def test_empty_file() -> None:
    p = only_problem("# nothing here\n")
    assert (p.line, p.column, p.field) == (1, 1, "")
    assert "empty" in p.message


def test_top_level_not_a_mapping() -> None:
    p = only_problem("- a\n- b\n")
    assert (p.line, p.field) == (1, "")
    assert "expected a mapping at the top level" in p.message
    assert "got a list" in p.message


def test_unknown_key_suggests_close_name() -> None:
    p = only_problem(HEADER + "  - name: a\n    topic: t\n    handler: S/h\n    fromat: json\n")
    assert (p.line, p.column, p.field) == (8, 5, "bindings[0].fromat")
    assert p.message == "unknown key 'fromat'; did you mean 'format'?"


def test_unknown_top_level_key_without_close_name_lists_keys() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: S/h}\nzzz: 1\n")
    assert (p.line, p.field) == (6, "zzz")
    assert "expected one of restate, kafka, topics, worker, bindings" in p.message


def test_wrong_type_partitions() -> None:
    p = only_problem(
        """\
        kafka: {clusters: {local: {bootstrap.servers: b}}}
        topics:
          driver-updates:
            partitions: "four"
        """
    )
    assert (p.line, p.column, p.field) == (4, 17, "topics.driver-updates.partitions")
    assert p.message == "expected an integer >= 1; got 'four'"


def test_missing_required_field() -> None:
    p = only_problem(HEADER + "  - name: a\n    topic: t\n")
    assert (p.line, p.column, p.field) == (5, 5, "bindings[0].handler")
    assert "missing required field 'handler'" in p.message
    assert "Service/handler" in p.message


def test_undefined_env_var_without_default() -> None:
    p = only_problem(
        """\
        kafka:
          clusters:
            local:
              bootstrap.servers: b
              sasl.password: "${KAFKA_PASSWORD}"
        """
    )
    assert (p.line, p.column) == (5, 22)
    assert p.field == "kafka.clusters.local.sasl.password"
    assert "KAFKA_PASSWORD is not set and has no default" in p.message
    assert str(p).startswith("conf/bindings.yaml:5:22: kafka.clusters.local.sasl.password: ")


def test_malformed_reference() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: S/h, group: 'g-${oops'}\n")
    assert (p.line, p.field) == (5, "bindings[0].group")
    assert "malformed reference" in p.message


def test_duplicate_binding_names_name_both_lines() -> None:
    p = only_problem(
        HEADER
        + """\
  - name: twin
    topic: t
    handler: S/h
  - name: twin
    topic: u
    handler: S/h
"""
    )
    assert (p.line, p.field) == (8, "bindings[1].name")
    assert p.message == "duplicate binding name 'twin' (first at line 5)"


def test_unknown_cluster_suggests() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: S/h, cluster: locl}\n")
    assert (p.line, p.field) == (5, "bindings[0].cluster")
    assert "unknown cluster 'locl'" in p.message
    assert "did you mean 'local'?" in p.message


def test_ambiguous_cluster() -> None:
    p = only_problem(
        """\
        kafka:
          clusters:
            a: {bootstrap.servers: a}
            b: {bootstrap.servers: b}
        bindings:
          - {name: x, topic: t, handler: S/h}
        """
    )
    assert (p.line, p.field) == (6, "bindings[0].cluster")
    assert "2 clusters are declared (a, b)" in p.message


def test_binding_cluster_contradicts_declared_topic() -> None:
    p = only_problem(
        """\
        kafka:
          clusters:
            a: {bootstrap.servers: a}
            b: {bootstrap.servers: b}
        topics:
          t: {cluster: a}
        bindings:
          - {name: x, topic: t, handler: S/h, cluster: b}
        """
    )
    assert (p.line, p.field) == (8, "bindings[0].cluster")
    assert "declared on cluster 'a' under topics: (line 6)" in p.message


def test_bad_duration() -> None:
    p = only_problem(
        HEADER
        + """\
  - name: a
    topic: t
    handler: S/h
    retry:
      initial_interval: fast
"""
    )
    assert (p.line, p.column, p.field) == (9, 25, "bindings[0].retry.initial_interval")
    assert "expected a duration with a unit, like 200ms, 1.5s, 10s, 2m" in p.message
    assert p.message.endswith("got 'fast'")


def test_a_bare_number_is_not_a_duration() -> None:
    p = only_problem(
        HEADER + "  - {name: a, topic: t, handler: S/h, retry: {initial_interval: 100}}\n"
    )
    assert p.field == "bindings[0].retry.initial_interval"
    assert "with a unit" in p.message and p.message.endswith("got 100")


def test_retry_bounds() -> None:
    found = problems(
        HEADER
        + """\
  - name: a
    topic: t
    handler: S/h
    retry: {max_attempts: 0, initial_interval: 10s, max_interval: 1s, factor: 0.5}
"""
    )
    assert [(p.line, p.field) for p in found] == [
        (8, "bindings[0].retry.max_attempts"),
        (8, "bindings[0].retry.max_interval"),
        (8, "bindings[0].retry.factor"),
    ]
    assert "must not be shorter than initial_interval" in found[1].message


def test_cluster_name_must_be_hostname_label() -> None:
    p = only_problem("kafka:\n  clusters:\n    Local_Kafka: {bootstrap.servers: b}\n")
    assert (p.line, p.column, p.field) == (3, 5, "kafka.clusters.Local_Kafka")
    assert "hostname label" in p.message
    assert "got 'Local_Kafka'" in p.message


def test_cluster_needs_bootstrap_servers() -> None:
    p = only_problem("kafka:\n  clusters:\n    local:\n      client.id: me\n")
    assert (p.line, p.field) == (4, "kafka.clusters.local")
    assert "missing required property 'bootstrap.servers'" in p.message


def test_missing_kafka_section() -> None:
    p = only_problem("bindings: []\n")
    assert (p.line, p.field) == (1, "kafka")
    assert "missing required field 'kafka'" in p.message


def test_handler_form() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: just_a_handler}\n")
    assert (p.line, p.field) == (5, "bindings[0].handler")
    assert 'expected "Service/handler"' in p.message
    assert "got 'just_a_handler'" in p.message


def test_bad_format_message() -> None:
    p = only_problem(HEADER + "  - name: a\n    topic: t\n    handler: S/h\n    format: jsn\n")
    assert str(p) == (
        "conf/bindings.yaml:8:13: bindings[0].format: "
        "expected one of json, avro, bytes, string; got 'jsn'"
    )


def test_avro_without_schema() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: S/h, format: avro}\n")
    assert (p.line, p.field) == (5, "bindings[0].schema")
    assert "format: avro needs schema:" in p.message


def test_avro_schema_file_missing(tmp_path: Path) -> None:
    p = only_problem(
        HEADER + "  - {name: a, topic: t, handler: S/h, format: avro, schema: s/none.avsc}\n",
        path=tmp_path / "bindings.yaml",
    )
    assert (p.line, p.field) == (5, "bindings[0].schema")
    assert p.message == f"schema file not found: {tmp_path / 's/none.avsc'}"


def test_schema_and_avro_wire_only_with_avro() -> None:
    found = problems(
        HEADER + "  - {name: a, topic: t, handler: S/h, schema: x.avsc, avro_wire: confluent}\n"
    )
    assert [p.field for p in found] == ["bindings[0].schema", "bindings[0].avro_wire"]
    assert all("only to format: avro" in p.message for p in found)


def test_dead_letter_must_differ_from_topic() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: S/h, dead_letter: t}\n")
    assert p.field == "bindings[0].dead_letter"
    assert "must differ" in p.message


def test_bad_binding_name_and_topic_name() -> None:
    found = problems(HEADER + "  - {name: Bad Name, topic: 'a topic', handler: S/h}\n")
    assert [(p.line, p.field) for p in found] == [
        (5, "bindings[0].name"),
        (5, "bindings[0].topic"),
    ]
    assert "got 'Bad Name'" in found[0].message
    assert "Kafka topic name" in found[1].message


def test_duplicate_mapping_key() -> None:
    p = only_problem(HEADER + "  - name: a\n    topic: t\n    topic: u\n    handler: S/h\n")
    assert (p.line, p.field) == (7, "bindings[0].topic")
    assert "duplicate key (first at line 6)" in p.message


def test_shared_consumer_group() -> None:
    p = only_problem(
        HEADER
        + "  - {name: a, topic: t, handler: S/h, group: g}\n"
        + "  - {name: b, topic: u, handler: S/h, group: g}\n"
    )
    assert (p.line, p.field) == (6, "bindings[1].group")
    assert "already used by binding 'a' (line 5)" in p.message


def test_worker_problems() -> None:
    found = problems(
        HEADER
        + """\
worker:
  app: examples/app.py
  uri: localhost:9080
  processes: 0
  identity_keys: [nope]
"""
    )
    assert [(p.line, p.field) for p in found] == [
        (6, "worker.app"),
        (7, "worker.uri"),
        (8, "worker.processes"),
        (9, "worker.identity_keys[0]"),
    ]


def test_all_problems_in_one_pass_sorted_by_line() -> None:
    with pytest.raises(BindingsError) as raised:
        parse(
            HEADER
            + """\
  - name: a
    topic: t
    handler: nope
    keyed: maybe
    start: beginning
"""
        )
    assert str(raised.value).splitlines() == [
        'conf/bindings.yaml:7:14: bindings[0].handler: expected "Service/handler" like '
        "driver-digital-twin/handle_location; got 'nope'",
        "conf/bindings.yaml:8:12: bindings[0].keyed: expected true or false; got 'maybe'",
        "conf/bindings.yaml:9:12: bindings[0].start: expected one of earliest, latest; "
        "got 'beginning'",
    ]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BindingsError, match="cannot read the file"):
        load_bindings(tmp_path / "absent.yaml")


def test_default_group_colliding_with_a_pinned_one_is_an_error() -> None:
    text = (
        "kafka: {clusters: {local: {bootstrap.servers: 'k:9092'}}}\n"
        "bindings:\n"
        "  - {name: a, topic: t1, handler: S/h}\n"
        "  - {name: b, topic: t2, handler: S/h2, group: restate-stream.a}\n"
    )
    with pytest.raises(BindingsError, match=r"consumer group 'restate-stream.a' is already used"):
        parse_bindings(text, Path("g.yaml"), env={})


def test_dedupe_needs_json() -> None:
    text = (
        "kafka: {clusters: {local: {bootstrap.servers: 'k:9092'}}}\n"
        "bindings:\n"
        "  - {name: a, topic: t1, handler: S/h, format: string, dedupe: true}\n"
    )
    with pytest.raises(BindingsError, match=r"g.yaml:3:.*dedupe needs format json"):
        parse_bindings(text, Path("g.yaml"), env={})


def test_schema_registry_only_with_confluent_avro(tmp_path: Path) -> None:
    schema = tmp_path / "s.avsc"
    schema.write_text('{"type": "record", "name": "R", "fields": []}')
    base = (
        "kafka: {clusters: {local: {bootstrap.servers: 'k:9092'}}}\n"
        "bindings:\n"
        "  - {name: a, topic: t, handler: S/h, format: avro, schema: s.avsc, %s}\n"
    )
    ok = parse_bindings(
        base % "avro_wire: confluent, schema_registry: 'http://registry:8081'",
        tmp_path / "b.yaml",
        env={},
    )
    assert ok.bindings[0].schema_registry == "http://registry:8081"
    with pytest.raises(BindingsError, match=r"b.yaml:3:.*schema_registry applies only to"):
        parse_bindings(
            base % "schema_registry: 'http://registry:8081'", tmp_path / "b.yaml", env={}
        )
    with pytest.raises(BindingsError, match=r"schema_registry: expected an http"):
        parse_bindings(
            base % "avro_wire: confluent, schema_registry: registry", tmp_path / "b.yaml", env={}
        )


def test_text_values_are_taken_as_written() -> None:
    spec = parse(
        HEADER + "  - {name: a, topic: 2024, handler: S/h, options: {x: 0x10, y: yes, z: 1.50}}\n"
    )
    (b,) = spec.bindings
    assert b.topic == "2024"
    assert b.options == {"x": "0x10", "y": "true", "z": "1.50"}


def test_unknown_nested_key_suggests_at_the_key() -> None:
    p = only_problem(
        HEADER + "  - name: a\n    topic: t\n    handler: S/h\n    retry:\n      max_attempt: 3\n"
    )
    assert (p.line, p.column, p.field) == (9, 7, "bindings[0].retry.max_attempt")
    assert p.message == "unknown key 'max_attempt'; did you mean 'max_attempts'?"


def test_resolved_fields_are_not_keys_of_the_file() -> None:
    p = only_problem(HEADER + "  - {name: a, topic: t, handler: S/h, service: S}\n")
    assert p.field == "bindings[0].service"
    assert p.message.startswith("unknown key 'service'")


def test_null_means_not_written() -> None:
    spec = parse(
        """\
        kafka: {clusters: {local: {bootstrap.servers: b}}}
        restate:
        topics:
          t:
        bindings:
          - {name: a, topic: t, handler: S/h, retry: ~, group: ~, paused: ~}
        """
    )
    assert spec.restate.admin_url == "http://127.0.0.1:9070"
    assert spec.topics["t"].cluster == "local" and spec.topics["t"].partitions is None
    (b,) = spec.bindings
    assert (b.retry, b.group, b.paused) == (None, None, False)


def test_an_unreadable_value_is_reported_once() -> None:
    p = only_problem(
        "kafka: {clusters: {local: {bootstrap.servers: b}}}\ntopics:\n  t: {partitions: '${P}'}\n"
    )
    assert (p.line, p.field) == (3, "topics.t.partitions")
    assert "P is not set" in p.message


def test_option_set_by_own_field_points_at_the_option() -> None:
    p = only_problem(
        HEADER + "  - name: a\n    topic: t\n    handler: S/h\n    group: g\n"
        "    options:\n      group.id: g2\n"
    )
    assert (p.line, p.field) == (10, "bindings[0].options.group.id")
    assert p.message == "group.id is set by group:; drop it from options"

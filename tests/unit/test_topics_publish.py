"""`publish` without engines: JSONL parsing with line numbers, encoding, targets, progress."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import pytest

from restate_stream.bindings import parse_bindings
from restate_stream.cli import main
from restate_stream.cli.topics import progress_bar, render_result
from restate_stream.runtime.formats import JsonCodec, StringCodec, unwrap_cloudevent
from restate_stream.testing import bindings_yaml
from restate_stream.topics.publish import (
    Line,
    PublishInputError,
    PublishResult,
    codec_for_publish,
    encoder,
    parse_jsonl,
    parse_line,
    prepare,
    resolve_target,
    value_from_flag,
)


def jsonl(*lines: str) -> list[bytes]:
    return [f"{line}\n".encode() for line in lines]


def test_lines_carry_key_value_raw_bytes_and_partition() -> None:
    assert parse_line('{"key": "k", "value": {"a": 1}}', 4) == Line(4, "k", {"a": 1})
    assert parse_line('{"value": "text"}', 1) == Line(1, None, "text")
    raw = base64.b64encode(b"\xff\x00").decode()
    assert parse_line(f'{{"key": "k", "value_base64": "{raw}", "partition": 2}}', 1) == Line(
        1, "k", None, b"\xff\x00", 2
    )
    assert parse_line("   ", 3) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"key": 7, "value": 1}', "key must be a string (UTF-8 text), got a number"),
        ('{"key": ["a"], "value": 1}', "got an array"),
        ('{"key": "\\ud800", "value": 1}', "is not valid UTF-8"),
        ('{"key": "k", "value": ', "not valid JSON: Expecting value (column 23)"),
        ("[1, 2]", "expected a JSON object"),
        ('{"key": "k", "vaule": 1}', "unknown field 'vaule'"),
        ('{"key": "k"}', "needs one of value or value_base64"),
        ('{"value": 1, "value_base64": "AA=="}', "needs one of value or value_base64"),
        ('{"value_base64": "not base64!"}', "value_base64 is not valid base64"),
        ('{"value": 1, "partition": -1}', "partition must be a non-negative integer"),
        ('{"value": 1, "partition": true}', "partition must be a non-negative integer"),
    ],
)
def test_bad_lines_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_line(text, 1)
    assert problem in str(caught.value)


def test_parse_jsonl_names_file_and_line_of_every_bad_line() -> None:
    data = jsonl('{"key": "a", "value": 1}', "", '{"key": 1, "value": 2}', '{"key": "c"')
    data.append(b'{"key": "\xff", "value": 1}\n')
    with pytest.raises(PublishInputError) as caught:
        parse_jsonl(data, "r.jsonl")
    lines = str(caught.value).splitlines()
    assert lines[0] == "r.jsonl:3: key must be a string (UTF-8 text), got a number"
    assert lines[1].startswith("r.jsonl:4: not valid JSON")
    assert lines[2] == "r.jsonl:5: not UTF-8 text (invalid start byte at byte 9)"
    assert len(lines) == 3


def test_parse_jsonl_keeps_line_numbers_past_blank_lines_and_caps_the_error_list() -> None:
    parsed = parse_jsonl(jsonl('{"value": 1}', "", '{"key": "k", "value": 2}'), "r.jsonl")
    assert [(line.number, line.key) for line in parsed] == [(1, None), (3, "k")]
    with pytest.raises(PublishInputError, match=r"r\.jsonl: no records"):
        parse_jsonl(jsonl("", ""), "r.jsonl")
    with pytest.raises(PublishInputError) as caught:
        parse_jsonl(jsonl(*["[]"] * 25), "r.jsonl")
    lines = str(caught.value).splitlines()
    assert len(lines) == 11 and lines[-1] == "... and 15 more"


def test_flag_values_follow_the_format() -> None:
    assert value_from_flag('{"a": 1}', "json").value == {"a": 1}
    assert value_from_flag("plain text", "string").value == "plain text"
    assert value_from_flag(base64.b64encode(b"\x00").decode(), "bytes").raw == b"\x00"
    with pytest.raises(ValueError, match="not valid JSON"):
        value_from_flag("plain text", "json")
    with pytest.raises(ValueError, match="base64"):
        value_from_flag("no!", "bytes")


def test_encoding_per_format_with_raw_bytes_passing_through() -> None:
    json_encode = encoder(JsonCodec(), "json", "t", envelope=False)
    assert json_encode(Line(1, None, {"a": 1})) == b'{"a":1}'
    assert json_encode(Line(1, None, raw=b"{not json")) == b"{not json"  # a poison record
    envelope = json.loads(encoder(JsonCodec(), "json", "t", envelope=True)(Line(1, None, [1])))
    data, event_id, kind = unwrap_cloudevent(envelope)
    assert data == [1] and event_id and kind == "t.published"
    with pytest.raises(ValueError, match="expected str"):
        encoder(StringCodec(), "string", "t", envelope=False)(Line(1, None, 5))
    with pytest.raises(ValueError, match="value_base64"):
        encoder(None, "bytes", "t", envelope=False)(Line(1, None, "x"))
    with pytest.raises(PublishInputError, match="needs format json"):
        encoder(StringCodec(), "string", "t", envelope=True)


def test_avro_needs_a_schema_and_confluent_an_id(tmp_path: Path) -> None:
    with pytest.raises(PublishInputError, match="--schema"):
        codec_for_publish("avro", None, "plain", None)
    schema = tmp_path / "s.avsc"
    schema.write_text('{"type": "record", "name": "S", "fields": [{"name": "n", "type": "int"}]}')
    with pytest.raises(PublishInputError, match="--schema-id"):
        codec_for_publish("avro", schema, "confluent", None)
    codec = codec_for_publish("avro", schema, "confluent", 12)
    assert codec is not None and codec.encode({"n": 1})[:5] == b"\x00\x00\x00\x00\x0c"


def test_prepare_collects_encoding_errors_and_checks_partitions() -> None:
    encode = encoder(StringCodec(), "string", "t", envelope=False)
    lines = [Line(1, "é", "ok"), Line(2, None, 3), Line(3, None, "x", partition=4)]
    with pytest.raises(PublishInputError) as caught:
        prepare(lines, encode, "r.jsonl", partitions=4)
    assert str(caught.value).splitlines() == [
        "r.jsonl:2: format string: expected str, got int",
        "r.jsonl:3: partition 4: the topic has 4",
    ]
    [record] = prepare(lines[:1], encode, "r.jsonl", partitions=4)
    assert (record.line, record.key, record.value) == (1, "é".encode(), b"ok")


TWO_CLUSTERS = bindings_yaml(
    clusters={"a": "a:9092", "b": {"bootstrap.servers": "b:9092", "security.protocol": "SASL_SSL"}},
    topics={"declared": {"cluster": "b"}},
    bindings=[
        {"name": "bound", "topic": "bound", "cluster": "a", "handler": "S/h", "format": "string"}
    ],
)


def test_targets_come_from_flags_the_topic_or_the_only_cluster() -> None:
    spec = parse_bindings(TWO_CLUSTERS, Path("b.yaml"), {})
    declared = resolve_target(spec, "declared", None, None)
    assert declared.cluster == "b" and declared.properties["security.protocol"] == "SASL_SSL"
    bound = resolve_target(spec, "bound", None, None)
    assert bound.cluster == "a" and bound.binding is not None and bound.binding.format == "string"
    assert resolve_target(spec, "other", "b", None).cluster == "b"
    with pytest.raises(PublishInputError, match=r"which Kafka cluster\? pass --cluster \(a, b\)"):
        resolve_target(spec, "other", None, None)
    with pytest.raises(PublishInputError, match="no Kafka cluster 'c'"):
        resolve_target(spec, "other", "c", None)
    direct = resolve_target(None, "x", None, "k:1")
    assert direct.properties == {"bootstrap.servers": "k:1"} and direct.binding is None
    with pytest.raises(PublishInputError, match="--bootstrap"):
        resolve_target(None, "x", None, None)
    one = parse_bindings(bindings_yaml(clusters={"only": "o:1"}), Path("b"), {})
    assert resolve_target(one, "anything", None, None).cluster == "only"


def test_no_progress_bar_in_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar() as advance:
        for done in range(1, 101):
            advance(done, 100)
    assert capsys.readouterr() == ("", "")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_and_ends_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    with progress_bar() as advance:
        for done in range(1, 101):
            advance(done, 100)
    drawn = terminal.getvalue()
    # The last frame before the (transient) bar is cleared shows every record done.
    assert "publishing" in drawn and "100/100" in drawn, drawn


def test_the_result_line_names_counts_partitions_and_rate() -> None:
    result = PublishResult("t", "local", 500, {1: 200, 0: 290}, ["f:7: broker down"], 2.0)
    assert (result.written, result.ok) == (490, False)
    assert render_result(result) == (
        "published 490 of 500 record(s) to t on local in 2.00s, 250/s; partitions: 0 (290), 1 (200)"
    )
    assert result.failure_report() == "f:7: broker down"


def test_cli_rejects_key_with_records(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", "t", "--records", "r.jsonl", "--key", "k"]) == 2
    assert "--key goes with --value" in capsys.readouterr().err
    assert main(["publish", "t"]) == 2  # a usage error, as the shell sees it
    assert "one of --value, --records is needed" in capsys.readouterr().err
    assert main(["publish", "t", "--value", "1", "--cluster", "c", "--bootstrap", "b:1"]) == 2
    assert "--cluster and --bootstrap exclude each other" in capsys.readouterr().err

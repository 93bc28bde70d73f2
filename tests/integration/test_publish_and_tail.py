"""`publish` and `tail` as people run them, against the real engines."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from connectors import TopicAdmin
from connectors.consume import end_offsets, read_topic
from restate_stream.stack import LocalStack
from restate_stream.testing import bindings_yaml, run_cli, topic_records

pytestmark = pytest.mark.engines


async def test_publish_file_produces_every_line_with_its_key(
    restate_stream_stack: LocalStack, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, bootstrap = f"publish-{run}", restate_stream_stack.bootstrap_servers
    TopicAdmin(bootstrap).create_topic(topic, partitions=3)
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(bindings_yaml(clusters={f"p-{run}": bootstrap}))
    records = tmp_path / "records.jsonl"
    records.write_text(
        "".join(json.dumps({"key": f"käy-{i % 7}", "value": {"n": i}}) + "\n" for i in range(500))
    )

    done = run_cli("publish", topic, "-f", str(bindings), "--records", str(records))
    assert done.returncode == 0, done.stderr
    assert f"published 500 of 500 record(s) to {topic}" in done.stdout
    assert "partitions: 0 (" in done.stdout

    messages = await topic_records(bootstrap, topic, at_least=500)
    assert len(messages) == 500
    by_key: dict[str, list[int]] = {}
    for message in messages:
        key, value = (message.key or b"").decode(), json.loads(message.value or b"")
        assert key == f"käy-{value['n'] % 7}"
        by_key.setdefault(key, []).append(value["n"])
    assert all(ns == sorted(ns) for ns in by_key.values()), "per-key order is the file's"

    one = run_cli(
        "publish", topic, "-f", str(tmp_path / "absent.yaml"), "--bootstrap", bootstrap,
        "--key", "solo", "--value", '{"n": -1}',
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    [solo] = [r for r in read_topic(bootstrap, topic) if r.key == b"solo"]
    assert json.loads(solo.value or b"") == {"n": -1}


def test_publish_rejects_bad_lines_and_sends_nothing(
    restate_stream_stack: LocalStack, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, bootstrap = f"publish-bad-{run}", restate_stream_stack.bootstrap_servers
    TopicAdmin(bootstrap).create_topic(topic, partitions=2)
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(bindings_yaml(clusters={f"p-{run}": bootstrap}))
    records = tmp_path / "records.jsonl"
    records.write_text(
        '{"key": "a", "value": 1}\n'
        '{"key": "b", "value": 2}\n'
        '{"key": 7, "value": 3}\n'
        "\n"
        '{"key": "c", "value": \n'
        '{"key": "\\ud800", "value": 5}\n'
    )

    failed = run_cli("publish", topic, "-f", str(bindings), "--records", str(records))
    assert failed.returncode == 2
    assert f"{records}:3: key must be a string (UTF-8 text), got a number" in failed.stderr
    assert f"{records}:5: not valid JSON" in failed.stderr
    assert f"{records}:6: key '\\ud800' is not valid UTF-8" in failed.stderr
    assert sum(end_offsets(bootstrap, topic).values()) == 0, "a bad file sends nothing"

    missing = run_cli("publish", f"nope-{run}", "-f", str(bindings), "--value", "1")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_tail_shows_what_publish_sent(restate_stream_stack: LocalStack, tmp_path: Path) -> None:
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    bootstrap = restate_stream_stack.bootstrap_servers
    TopicAdmin(bootstrap).create_topic(topic, 2)
    sent = run_cli(
        "publish", topic, "--bootstrap", bootstrap, "--key", "k-1", "--value", '{"n": 1}'
    )
    assert sent.returncode == 0, sent.stderr
    shown = run_cli("tail", topic, "--bootstrap", bootstrap)
    assert shown.returncode == 0, shown.stderr
    [line] = [x for x in shown.stdout.splitlines() if "key=k-1" in x]
    assert line.endswith('key=k-1  {"n":1}')
    assert f"1 record(s) on {topic}" in shown.stdout
    missing = run_cli("tail", "no-such-topic-here", "--bootstrap", bootstrap)
    assert missing.returncode == 2 and "does not exist" in missing.stderr

"""`dlq list` and `dlq redrive` as people run them, against the real engines."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors import TopicAdmin
from restate_stream.bindings import BindingsFile, load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.status import binding_statuses
from restate_stream.runtime.bound import bind
from restate_stream.runtime.dead_letter import (
    DEAD_LETTER_TYPE,
    RESOLVED_TYPE,
    DeadLetter,
    LetterRef,
    Resolution,
)
from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.letter_signing import KEY_ENV
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    run_cli,
    topic_records,
    wait_until,
)
from tests.integration import redrive_app

pytestmark = pytest.mark.engines


def outcomes(stdout: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in stdout.splitlines():
        for outcome in ("failed again", "resolved", "done", "pending", "error", "skipped"):
            if f"  {outcome}" in line:
                found[outcome] += 1
                break
    return found


def sink_bindings(
    stack: LocalStack, path: Path, topic: str, dlq: str, cluster: str, partitions: int
) -> BindingsFile:
    """Binding `sink` of `topic` to RedriveSink/consume with dead-letter topic `dlq`, bound."""
    path.write_text(
        bindings_yaml(
            admin_url=stack.admin_url,
            ingress_url=stack.ingress_url,
            clusters={cluster: stack.bootstrap_servers},
            topics={topic: {"cluster": cluster, "partitions": partitions}},
            bindings=[
                {
                    "name": "sink",
                    "topic": topic,
                    "handler": "RedriveSink/consume",
                    "dead_letter": dlq,
                }
            ],
        )
    )
    redrive_app.POISON_FAILS = True
    spec = load_bindings(path)
    assert bind([redrive_app.sink], spec) == ["RedriveSink/consume"]
    return spec


def listed(path: Path) -> list[dict[str, Any]]:
    done = run_cli("dlq", "list", "sink", "-f", str(path), "--json")
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


async def test_redrive_sends_each_source_record_once_until_it_is_resolved(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    """Two poison records, redriven twice while they still fail: two entries with three
    letters each, not six entries; once fixed, one redrive resolves both, the next sends none."""
    run = uuid.uuid4().hex[:8]
    topic, dlq, cluster = f"redrive-{run}", f"redrive-{run}.dlq", f"r-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    spec = sink_bindings(restate_stream_stack, path, topic, dlq, cluster, partitions=2)
    keys = [f"{run}-{k}" for k in range(3)]
    records = [(keys[i % 3], {"id": i, "poison": i in (3, 7)}) for i in range(12)]
    poison = {r["id"] for _, r in records if r["poison"]}
    expected = {k: sorted(r["id"] for key, r in records if key == k) for k in keys}

    async def seen() -> dict[str, list[list[Any]]]:
        state = await object_state(restate_admin, "RedriveSink", "seen")
        return {k: v for k, v in state.items() if k in keys}

    def ids(state: dict[str, list[list[Any]]]) -> Counter[int]:
        return Counter(entry[0] for entries in state.values() for entry in entries)

    def redrive() -> subprocess.CompletedProcess[str]:
        return run_cli("dlq", "redrive", "sink", "-f", str(path))

    async with restate_app(redrive_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        try:
            produce_json(bootstrap, topic, records)
            await wait_until(seen, lambda s: sum(ids(s).values()) >= 12 - len(poison), timeout=60)
            await topic_records(bootstrap, dlq, at_least=len(poison))
            original = listed(path)
            assert len(original) == len(poison)
            assert {json.loads(e["history"][0]["value"])["id"] for e in original} == poison
            fields = ("topic", "partition", "offset")
            source_of = {
                json.loads(e["history"][0]["value"])["id"]: [e["source"][f] for f in fields]
                for e in original
            }

            dry = run_cli("dlq", "redrive", "sink", "-f", str(path), "--dry-run")
            assert dry.returncode == 0 and "idempotency-key: redrive/sink/" in dry.stdout
            assert f"dry run: {len(poison)} of {len(poison)}" in dry.stdout
            assert sum(ids(await seen()).values()) == 12 - len(poison), "a dry run sends nothing"

            # Still failing, twice: each redrive sends each source record's latest letter
            # once, and the new letter joins that record's history.
            for _ in range(2):
                again = redrive()
                assert again.returncode == 1, again.stdout + again.stderr
                assert outcomes(again.stdout) == {"failed again": len(poison)}, again.stdout
            history = listed(path)
            assert len(history) == len(poison), history
            assert all(e["letter_count"] == 3 and not e["resolved"] for e in history), history
            text = run_cli("dlq", "list", "sink", "-f", str(path))
            assert text.stdout.count("letters=3") == len(poison), text.stdout
            assert f"{len(poison)} unresolved, 0 resolved (6 letter(s)" in text.stdout
            [status] = await binding_statuses(spec, restate_admin, TopicAdmin)
            assert (status.dead_letters, status.dead_letters_resolved) == (len(poison), 0)

            # Fixed: one redrive resolves both; the next finds nothing to send.
            redrive_app.POISON_FAILS = False
            fixed = redrive()
            assert fixed.returncode == 0, fixed.stdout + fixed.stderr
            assert outcomes(fixed.stdout) == {"resolved": len(poison)}, fixed.stdout
            after = redrive()
            assert after.returncode == 0, after.stdout + after.stderr
            assert "0 source record(s): nothing to do" in after.stdout, after.stdout
            final = await seen()
            resolved = listed(path)
            [status] = await binding_statuses(spec, restate_admin, TopicAdmin)
        finally:
            await drop_cluster(restate_admin, cluster)

    assert ids(final) == Counter(range(12)), "every record processed exactly once in total"
    for key in keys:
        assert sorted(entry[0] for entry in final[key]) == expected[key]
    for entries in final.values():
        for record_id, *where in entries:
            if record_id in poison:
                assert where == source_of[record_id], "the handler saw the original coordinates"
    assert all(e["resolved"] and e["letter_count"] == 3 for e in resolved), resolved
    assert (status.dead_letters, status.dead_letters_resolved) == (0, len(poison))


async def test_with_signing_a_forged_letter_and_resolution_are_refused_by_redrive(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever can write the dead-letter topic forges a letter to apply a record again and a
    resolution to hide the real letter; with a signing key in the worker and the CLI, redrive
    refuses both (each reported with its reason) and redrives the real letter."""
    monkeypatch.setenv(KEY_ENV, "integration-test signing key, 32+")
    run = uuid.uuid4().hex[:8]
    topic, dlq, cluster = f"signed-{run}", f"signed-{run}.dlq", f"s-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    spec = sink_bindings(restate_stream_stack, path, topic, dlq, cluster, partitions=1)
    key = f"{run}-k"
    records = [(key, {"id": 0, "poison": False}), (key, {"id": 1, "poison": True})]

    async def seen() -> list[list[Any]]:
        state = await object_state(restate_admin, "RedriveSink", "seen", object_key=key)
        return state.get(key, [])

    async with restate_app(redrive_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        try:
            produce_json(bootstrap, topic, records)
            await wait_until(seen, lambda s: len(s) == 1, timeout=60)
            [written] = await topic_records(bootstrap, dlq, at_least=1)
            assert json.loads(written.value or b"")["data"]["signature"].startswith("hmac-sha256:")
            [real] = listed(path)
            [applied] = await seen()
            # The forger copies the shape of a real letter: record 0 once more, and a
            # resolution naming the real letter, both keyed as the worker keys them.
            coords = KafkaCoordinates(topic, 0, applied[3], None, key.encode(), None)
            forged = DeadLetter.of("sink", coords, b'{"id": 0}', "TerminalError", "x", 1)
            real_at = LetterRef.model_validate(real["latest"]["dlq"])
            poison = KafkaCoordinates(topic, 0, real["source"]["offset"], None, key.encode(), None)
            hiding = Resolution.of("sink", poison, real_at)
            envelopes = [
                cloudevent("f1", DEAD_LETTER_TYPE, "x", "now", forged.to_json()),
                cloudevent("f2", RESOLVED_TYPE, "x", "now", hiding.to_json()),
            ]
            produce_json(bootstrap, dlq, [(key, json.loads(e)) for e in envelopes])
            await topic_records(bootstrap, dlq, at_least=3)
            text = run_cli("dlq", "list", "sink", "-f", str(path))
            assert text.stdout.count("REFUSED") == 2, text.stdout
            assert "1 unresolved, 0 resolved" in text.stdout, "the forged resolution hid it"

            redrive_app.POISON_FAILS = False
            redriven = run_cli("dlq", "redrive", "sink", "-f", str(path))
            assert redriven.returncode == 1, "a refused letter is not a success"
            assert outcomes(redriven.stdout) == {"resolved": 1, "skipped": 1}, redriven.stdout
            assert "skipped: refused: unsigned, and signing is on" in redriven.stdout
            final = await seen()
        finally:
            await drop_cluster(restate_admin, cluster)
    assert sorted(entry[0] for entry in final) == [0, 1], "record 0 applied once, 1 redriven"

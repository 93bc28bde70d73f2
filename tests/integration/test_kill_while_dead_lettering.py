"""A worker killed in the middle of dead-lettering, on the real engines.

The worker (a separate process) dies by SIGKILL right after the broker acknowledged a
record's dead letter, before Restate journaled that publish (the publisher's
`after-publish-ack` fault point: dead letters go through `Publisher.publish`). The restarted
worker replays the invocation: the dead letter is published again with the same event id,
the invocation completes, the key's next record is processed, and `dlq list` shows one
entry for the source record.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.dead_letter import DEAD_LETTER_TYPE, DeadLetter, parse_record
from restate_stream.runtime.publisher import AFTER_ACK, FAULT_ENV
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    run_cli,
    topic_records,
    wait_until,
)

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
APP = "tests.integration.dead_letter_crash_app:app"


async def test_a_kill_after_the_dead_letter_ack_leaves_one_source_record_entry(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, dlq, cluster = f"dlkill-{run}", f"dlkill-{run}.dlq", f"dlk-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    port = free_ports(1)[0]
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: bootstrap},
            topics={topic: {"cluster": cluster, "partitions": 1}},
            worker={"app": APP, "uri": f"http://127.0.0.1:{port}"},
            bindings=[
                {
                    "name": "sink",
                    "topic": topic,
                    "handler": "DeadLetterCrashSink/consume",
                    "dead_letter": dlq,
                    "retry": {"initial_interval": "50ms", "max_interval": "500ms"},
                }
            ],
        )
    )
    key = f"{run}-k"

    def worker(label: str, env: dict[str, str]) -> WorkerProcess:
        process = WorkerProcess(
            APP, tmp_path / f"worker-{label}.log", port=port, cwd=REPO, bindings=path, env=env
        )
        process.start()
        return process

    async def seen() -> list[int]:
        state = await object_state(restate_admin, "DeadLetterCrashSink", "seen", object_key=key)
        return list(state.get(key, []))

    doomed = worker("doomed", {FAULT_ENV: AFTER_ACK})
    try:
        _, report = await apply_bindings(load_bindings(path), restate_admin)
        assert report.ok, report.render()
        # The poison record first, then a good one of the same key waiting behind it.
        produce_json(bootstrap, topic, [(key, {"n": 1, "poison": True}), (key, {"n": 2})])

        async def exit_code() -> int | None:
            assert doomed.process is not None
            return doomed.process.returncode

        # The worker exits once its serving process is SIGKILLed (granian: 1, hypercorn: 0).
        await wait_until(exit_code, lambda c: c is not None, timeout=90)
        # The kill came after the ack and before the log line that follows the journal entry:
        # the first dead letter is already on the topic, and was never reported as written.
        before = await topic_records(bootstrap, dlq, at_least=1)
        assert len(before) == 1, before
        assert "dead-lettered" not in (tmp_path / "worker-doomed.log").read_text()
        assert await seen() == [], "the key's next record waits behind the unfinished one"
    finally:
        doomed.stop()

    survivor = worker("survivor", {})
    try:
        await restate_admin.register_deployment(survivor.uri, force=True)
        # Processed only once the poison record's invocation has completed (same key).
        assert await wait_until(seen, lambda s: s == [2], timeout=120) == [2]

        async def unfinished() -> list[dict[str, Any]]:
            return await restate_admin.query(
                "SELECT id, status FROM sys_invocation WHERE target_service_name = "
                f"'DeadLetterCrashSink' AND target_service_key = '{key}' "
                "AND status != 'completed'"
            )

        assert await wait_until(unfinished, lambda rows: rows == [], timeout=60) == []
        letters = await topic_records(bootstrap, dlq, at_least=1)
        listed = run_cli("dlq", "list", "sink", "-f", str(path), "--json", cwd=REPO)
        text = run_cli("dlq", "list", "sink", "-f", str(path), cwd=REPO)
        survivor_log = (tmp_path / "worker-survivor.log").read_text(errors="replace")
    finally:
        survivor.stop()
        await drop_cluster(restate_admin, cluster)

    # The replay published the letter again (nothing was journaled): at most twice, one id.
    assert 1 <= len(letters) <= 2, letters
    envelopes = [json.loads(r.value or b"") for r in letters]
    assert {e["type"] for e in envelopes} == {DEAD_LETTER_TYPE}
    assert len({e["id"] for e in envelopes}) == 1, "the same deterministic event id"
    assert json.loads(before[0].value or b"")["id"] == envelopes[0]["id"]
    for record in letters:
        letter = parse_record(record.value or b"")
        assert isinstance(letter, DeadLetter)
        assert (record.key or b"").decode() == key == letter.key
        assert letter.source.coordinates == (topic, 0, 0), "the poison record, first on the topic"
        assert letter.error.type == "TerminalError"
        assert letter.error.message == "record 1 is poison"
        assert json.loads(letter.value or "") == {"n": 1, "poison": True}
    assert "dead-lettered" in survivor_log, "the restarted worker finished the dead-lettering"

    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)  # one entry for the source record
    assert entry["source"]["offset"] == 0 and entry["source"]["topic"] == topic
    assert entry["key"] == key and not entry["resolved"]
    assert entry["latest"]["error"]["type"] == "TerminalError"
    # A crash copy (same event id) is the same failure: one letter, one attempt; the later
    # copy is the latest, the one a redrive would send.
    assert (entry["letter_count"], entry["attempts"]) == (1, 1), entry
    assert entry["latest"]["dlq"]["offset"] == letters[-1].offset
    assert text.returncode == 0, text.stderr
    assert f"1 source record(s) with dead letters of binding sink on {dlq}" in text.stdout
    assert "letters=1" in text.stdout, text.stdout

"""Crash safety of the durable publisher on the real engines, with a separate worker process.

1. The worker dies (SIGKILL) right after the broker acknowledged a publish, before Restate
   journaled it. The restarted worker replays the handler and publishes again: the record is
   on the topic twice with the same event id. Downstream, the binding with `dedupe: true`
   applies the effect once; the one without shows the duplicate.
2. The worker dies after the publish was journaled: the replay does not publish again.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import TopicAdmin
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.publisher import AFTER_ACK, FAULT_ENV
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    bindings_yaml,
    drop_cluster,
    object_state,
    topic_records,
    wait_exit,
    wait_until,
)

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
APP = "tests.integration.crash_app:app"


class Harness:
    def __init__(self, stack: LocalStack, admin: AdminClient, tmp: Path, run: str) -> None:
        self.stack, self.admin, self.tmp, self.run = stack, admin, tmp, run
        self.topic = f"crash-{run}"
        self.port = free_ports(1)[0]
        self.bindings = tmp / "bindings.yaml"
        cluster = f"c-{run}"
        self.bindings.write_text(
            bindings_yaml(
                admin_url=stack.admin_url,
                clusters={cluster: stack.bootstrap_servers},
                topics={self.topic: {"cluster": cluster, "partitions": 1}},
                worker={"app": APP, "uri": f"http://127.0.0.1:{self.port}"},
                bindings=[
                    {
                        "name": f"deduped-{run}",
                        "topic": self.topic,
                        "handler": "CrashDeduped/count",
                        "dedupe": True,
                    },
                    {"name": f"plain-{run}", "topic": self.topic, "handler": "CrashPlain/count"},
                ],
            )
        )

    def worker(self, label: str, fault: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(
            APP,
            self.tmp / f"worker-{label}.log",
            port=self.port,
            cwd=REPO,
            bindings=self.bindings,
            env={
                "CRASH_BOOTSTRAP": self.stack.bootstrap_servers,
                "CRASH_TOPIC": self.topic,
                **fault,
            },
        )
        worker.start()
        return worker

    async def apply(self) -> None:
        spec = load_bindings(self.bindings)
        _, report = await apply_bindings(spec, self.admin)
        assert report.ok, report.render()

    async def emit(self, key: str, n: int) -> None:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{self.stack.ingress_url}/CrashEmitter/{key}/emit/send",
                json={"key": key, "n": n},
            )
        assert response.status_code == 202, response.text

    async def effects(self, service: str, key: str) -> list[int]:
        state = await object_state(self.admin, service, "effects", object_key=key)
        return list(state.get(key, []))

    async def published(self, at_least: int) -> list[Any]:
        """The topic's records once `at_least` are there."""
        records = await topic_records(self.stack.bootstrap_servers, self.topic, at_least=at_least)
        return [json.loads(r.value or b"") for r in records]

    async def marker(self, service: str, key: str, n: int) -> list[int]:
        """Emit `n` after the crash and wait until `service` counted it: a later invocation on
        the same key and a later record in the partition, so whatever the crashed invocation
        could still produce or apply has been by then."""
        await self.emit(key, n)

        async def effects() -> list[int]:
            return await self.effects(service, key)

        return await wait_until(effects, lambda e: e[-1:] == [n], timeout=90)

    async def cleanup(self) -> None:
        await drop_cluster(self.admin, f"c-{self.run}")


async def test_crash_after_ack_duplicates_and_dedupe_absorbs_it(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    h = Harness(restate_stream_stack, restate_admin, tmp_path, uuid.uuid4().hex[:8])
    TopicAdmin(restate_stream_stack.bootstrap_servers).create_topic(h.topic, 1)
    doomed = h.worker("doomed", {FAULT_ENV: AFTER_ACK})
    try:
        await h.apply()
        await h.emit("order-1", 1)
        assert wait_exit(doomed) is not None, "the fault hook kills the worker after the ack"
    finally:
        doomed.stop()
    survivor = h.worker("survivor", {})
    try:
        await restate_admin.register_deployment(survivor.uri)

        async def plain() -> list[int]:
            return await h.effects("CrashPlain", "order-1")

        assert await wait_until(plain, lambda e: len(e) >= 2, timeout=90) == [1, 1]
        # Read before the marker below overwrites it: the id the crashed invocation journaled.
        emitted = await object_state(
            restate_admin, "CrashEmitter", "published", object_key="order-1"
        )
        assert await h.marker("CrashDeduped", "order-1", 2) == [1, 2], "dedupe applied it once"
        # The plain binding is its own subscription: it reaches the marker on its own time.
        assert await wait_until(plain, lambda e: e[-1:] == [2], timeout=90) == [1, 1, 2]
        published = await h.published(at_least=3)
        assert len(published) == 3, "the crash window produced the record twice (+ the marker)"
        assert published[0]["id"] == published[1]["id"], "with the same deterministic event id"
        assert published[2]["id"] != published[0]["id"]
        assert emitted["order-1"][2] == published[0]["id"], "the journaled id is the one sent"
    finally:
        survivor.stop()
        await h.cleanup()


async def test_crash_after_journal_does_not_publish_again(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    h = Harness(restate_stream_stack, restate_admin, tmp_path, uuid.uuid4().hex[:8])
    TopicAdmin(restate_stream_stack.bootstrap_servers).create_topic(h.topic, 1)
    doomed = h.worker("doomed", {"CRASH_AFTER_JOURNAL": "1"})
    try:
        await h.apply()
        await h.emit("order-2", 7)
        assert wait_exit(doomed) is not None
    finally:
        doomed.stop()
    survivor = h.worker("survivor", {})
    try:
        await restate_admin.register_deployment(survivor.uri)

        async def done() -> dict[str, Any]:
            return await object_state(
                restate_admin, "CrashEmitter", "published", object_key="order-2"
            )

        await wait_until(done, lambda s: "order-2" in s, timeout=90)
        assert await h.marker("CrashPlain", "order-2", 8) == [7, 8]
        published = await h.published(at_least=2)
        assert len(published) == 2, "a journaled publish is not repeated on replay (+ the marker)"
    finally:
        survivor.stop()
        await h.cleanup()

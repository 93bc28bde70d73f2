"""publish_many on the real engines, with a separate worker process.

1. Both producer adapters' send_many: every record acked in list order, and a record the
   client refuses fails alone while its neighbours land.
2. A bound handler publishes N records per input record in one durable step: each lands once,
   with distinct event ids, exactly the ones (and offsets) the handler journaled.
3. The worker dies (SIGKILL) after the broker acked the whole batch, before Restate journaled
   it: the restarted worker publishes the batch again with the SAME ids, so the `dedupe: true`
   consumer applies each record once while the plain one sees every record twice.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

import pytest

from connectors import TopicAdmin
from connectors.producer import Delivery, ProduceError, ProducerRecord, create_producer
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.publisher import AFTER_ACK, FAULT_ENV
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    topic_records,
    wait_exit,
    wait_until,
)
from tests.integration.publish_many_app import KEYS

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
APP = "tests.integration.publish_many_app:app"


@pytest.mark.parametrize("client", ["confluent", "aiokafka"])
async def test_send_many_acks_in_order_and_fails_records_alone(
    restate_stream_stack: LocalStack, client: Literal["confluent", "aiokafka"]
) -> None:
    bootstrap = restate_stream_stack.bootstrap_servers
    topic = f"send-many-{client}-{uuid.uuid4().hex[:8]}"
    TopicAdmin(bootstrap).create_topic(topic, 1)
    records = [ProducerRecord(topic, f"v{i}".encode(), b"k") for i in range(50)]
    records[7] = ProducerRecord(topic, b"x" * 2_000_000, b"k")  # over the 1 MB default limit
    producer = create_producer({"bootstrap.servers": bootstrap}, client)
    try:
        outcomes = await producer.send_many(records)
    finally:
        await producer.close()
    failed = outcomes[7]
    assert isinstance(failed, ProduceError) and not failed.retriable, failed
    acked = [o for i, o in enumerate(outcomes) if i != 7]
    assert all(isinstance(o, Delivery) for o in acked), acked
    offsets = [o.offset for o in acked if isinstance(o, Delivery)]
    assert offsets == list(range(49)), "one key, one partition: acked in list order"
    on_topic = await topic_records(bootstrap, topic, at_least=49)
    assert [r.value for r in on_topic] == [r.value for i, r in enumerate(records) if i != 7]


class Harness:
    def __init__(self, stack: LocalStack, admin: AdminClient, tmp: Path) -> None:
        self.stack, self.admin, self.tmp = stack, admin, tmp
        self.run = uuid.uuid4().hex[:8]
        self.source, self.out = f"many-in-{self.run}", f"many-out-{self.run}"
        admin_client = TopicAdmin(stack.bootstrap_servers)
        admin_client.create_topic(self.source, 2)
        admin_client.create_topic(self.out, 2)
        self.port = free_ports(1)[0]
        self.bindings = tmp / "bindings.yaml"
        run, cluster = self.run, f"c-{self.run}"
        self.bindings.write_text(
            bindings_yaml(
                admin_url=stack.admin_url,
                clusters={cluster: stack.bootstrap_servers},
                topics={
                    self.source: {"cluster": cluster, "partitions": 2},
                    self.out: {"cluster": cluster, "partitions": 2},
                },
                worker={"app": APP, "uri": f"http://127.0.0.1:{self.port}"},
                bindings=[
                    {"name": f"relay-{run}", "topic": self.source, "handler": "ManyRelay/fan_out"},
                    {
                        "name": f"deduped-{run}",
                        "topic": self.out,
                        "handler": "ManyDeduped/record",
                        "dedupe": True,
                    },
                    {"name": f"plain-{run}", "topic": self.out, "handler": "ManyPlain/record"},
                ],
            )
        )

    def worker(self, label: str, env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(
            APP,
            self.tmp / f"worker-{label}.log",
            port=self.port,
            cwd=REPO,
            bindings=self.bindings,
            env={"MANY_BOOTSTRAP": self.stack.bootstrap_servers, "MANY_OUT": self.out, **env},
        )
        worker.start()
        return worker

    async def apply(self) -> None:
        _, report = await apply_bindings(load_bindings(self.bindings), self.admin)
        assert report.ok, report.render()

    def trigger(self, batches: dict[str, int]) -> None:
        produce_json(
            self.stack.bootstrap_servers, self.source, [(k, {"n": n}) for k, n in batches.items()]
        )

    async def journaled(self, keys: list[str]) -> dict[str, list[list[Any]]]:
        """The relay's published acks by source key, once every key has them."""

        async def probe() -> dict[str, Any]:
            return await object_state(self.admin, "ManyRelay", "published")

        return await wait_until(probe, lambda s: set(keys) <= set(s), timeout=120)

    async def out_records(self, count: int) -> list[tuple[int, int, str, dict[str, Any]]]:
        """(partition, offset, key, envelope) of the output topic's records."""
        records = await topic_records(self.stack.bootstrap_servers, self.out, at_least=count)
        return [
            (r.partition, r.offset, (r.key or b"").decode(), json.loads(r.value or b""))
            for r in records
        ]

    async def completed(self, service: str, prefix: str, count: int) -> None:
        """Wait until `count` invocations of `service` on keys starting with `prefix` completed
        (the server is shared by the session's tests: other runs' keys must not count)."""
        sql = (
            "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = "
            f"{sql_literal(service)} AND target_service_key LIKE {sql_literal(prefix + '%')} "
            "AND status = 'completed'"
        )

        async def probe() -> int:
            return int((await self.admin.query(sql))[0]["n"])

        await wait_until(probe, lambda n: n >= count, timeout=120)

    async def effects(self, service: str, source: str) -> dict[str, list[int]]:
        """The consumer's effects by object key, for the keys `source`'s batches went to."""
        state = await object_state(self.admin, service, "effects")
        return {k: v for k, v in state.items() if k.startswith(source + "-")}

    async def cleanup(self) -> None:
        await drop_cluster(self.admin, f"c-{self.run}")


async def test_bound_handler_publishes_each_batch_once_with_distinct_ids(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    h = Harness(restate_stream_stack, restate_admin, tmp_path)
    batches = {f"{name}{h.run}": 20 for name in "abc"}  # own object keys: the server is shared
    worker = h.worker("only", {})
    try:
        await h.apply()
        h.trigger(batches)
        journal = await h.journaled(list(batches))
        # The state is written after publish_many returned: every ack is on the topic by now.
        out = await h.out_records(60)
        assert len(out) == 60, "each record once: no retries, no duplicates"
        ids = [envelope["id"] for _, _, _, envelope in out]
        assert len(set(ids)) == 60, "one distinct event id per record"
        where = {envelope["id"]: (p, o) for p, o, _, envelope in out}
        for source, n in batches.items():
            acks = journal[source]
            assert len(acks) == n
            for topic, partition, offset, event_id in acks:
                assert topic == h.out and where[event_id] == (partition, offset), (
                    "the journaled ack names where that event landed"
                )
        by_key: dict[str, list[int]] = defaultdict(list)
        for _, _, key, envelope in out:
            assert key.startswith(envelope["data"]["source"] + "-")
            by_key[key].append(envelope["data"]["i"])
        for source, n in batches.items():
            for k in range(KEYS):
                expected = [i for i in range(n) if i % KEYS == k]
                assert by_key[f"{source}-{k}"] == expected, "list order kept within a key"

        async def plain() -> dict[str, list[int]]:
            state = await object_state(h.admin, "ManyPlain", "effects")
            return {k: v for k, v in state.items() if k in by_key}

        assert await wait_until(plain, lambda e: sum(map(len, e.values())) >= 60) == by_key
    finally:
        worker.stop()
        await h.cleanup()


async def test_crash_after_the_batch_acks_republishes_it_with_the_same_ids(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    h = Harness(restate_stream_stack, restate_admin, tmp_path)
    n = 6
    source = f"x{h.run}"  # its own object keys: the server is shared
    doomed = h.worker("doomed", {FAULT_ENV: AFTER_ACK})
    try:
        await h.apply()
        h.trigger({source: n})
        assert wait_exit(doomed) is not None, "the fault hook kills the worker after the acks"
    finally:
        doomed.stop()
    survivor = h.worker("survivor", {})
    try:
        await restate_admin.register_deployment(survivor.uri)
        journal = await h.journaled([source])
        out = await h.out_records(2 * n)
        assert len(out) == 2 * n, "the crash window published the whole batch twice"
        copies = Counter(envelope["id"] for _, _, _, envelope in out)
        assert len(copies) == n and set(copies.values()) == {2}, (
            f"every record twice, with the same deterministic event id: {copies}"
        )
        journaled_ids = [ack[3] for ack in journal[source]]
        assert set(journaled_ids) == set(copies), "the journal holds those same ids"

        # Both consumers have seen all 2n records once their invocations completed.
        await h.completed("ManyPlain", source, 2 * n)
        await h.completed("ManyDeduped", source, 2 * n)
        expected = {f"{source}-{k}": [i for i in range(n) if i % KEYS == k] for k in range(KEYS)}
        assert await h.effects("ManyDeduped", source) == expected, "dedupe applied each record once"
        plain = await h.effects("ManyPlain", source)
        assert {k: sorted(v) for k, v in plain.items()} == {
            k: sorted(v * 2) for k, v in expected.items()
        }, "without dedupe the duplicates show"
    finally:
        survivor.stop()
        await h.cleanup()

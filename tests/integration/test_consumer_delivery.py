"""Per-record bindings on the real engines, one matrix over both deliveries: restate-stream's
own consumer (`delivery: consumer`, ingress sends with per-record idempotency keys) and a
Restate subscription. The same bound handler runs behind both: order per key, poison records
dead-lettered while the others flow, tombstones, exactly once through a worker SIGKILL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.ports import free_ports
from restate_stream.bindings import check_against_app, load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.status import binding_statuses
from restate_stream.runtime.bound import bind, with_high_water
from restate_stream.runtime.dead_letter import parse_record
from restate_stream.runtime.event import object_key_for
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    batch_deliveries,
    drop_cluster,
    object_state,
    topic_records,
    wait_until,
)
from tests.integration import record_app
from tests.integration.test_batch import kill_group

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
DELIVERIES = ["consumer", "subscription"]


def bindings_yaml(stack: LocalStack, run: str, delivery: str, worker: str = "") -> str:
    return f"""\
restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}
kafka:
  clusters:
    c-{run}: {{bootstrap.servers: "{stack.bootstrap_servers}"}}
topics:
  items-{run}: {{cluster: c-{run}, partitions: 2}}
  items-{run}.dlq: {{cluster: c-{run}, partitions: 1}}
{worker}bindings:
  - name: items-{run}
    topic: items-{run}
    handler: RecordLog/on_item
    delivery: {delivery}
    dead_letter: items-{run}.dlq
"""


async def applied(admin: AdminClient, run: str, *extra: str) -> dict[str, list[int]]:
    """Applied sequence numbers by object key, of this test's keys (with its run id; `extra`:
    objects named otherwise)."""
    state = await object_state(admin, "RecordLog", "seqs")
    return {k: v for k, v in state.items() if k.startswith(run) or k in extra}


def total(state: dict[str, list[int]]) -> int:
    return sum(len(v) for v in state.values())


async def wait_drained(stack: LocalStack, group: str, topic: str) -> None:
    """Until the group has committed every record of the topic."""
    kafka = TopicAdmin(stack.bootstrap_servers)

    async def lag() -> int:
        return sum(p.lag for p in await asyncio.to_thread(kafka.group_lag, group, topic))

    await wait_until(lag, lambda n: n == 0, timeout=120, describe=lambda n: f"lag {n}")


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_records_apply_in_order_poison_is_dead_lettered_tombstones_delete(
    delivery: str,
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic, dlq = f"items-{run}", f"items-{run}.dlq"
    path = tmp_path / "bindings.yaml"
    path.write_text(bindings_yaml(stack, run, delivery))
    spec = load_bindings(path)
    check_against_app(spec, [record_app.record_log])
    bind([record_app.record_log], spec)

    keys = [f"{run}-k{k}" for k in range(6)]
    records: list[Record] = []
    expected: dict[str, list[int]] = defaultdict(list)
    poison = 0
    for seq in range(600):
        key = keys[seq % len(keys)]
        tag = [("tag", f"t{seq}".encode())]
        if seq % 50 == 7:
            records.append(Record(key, b"{not json", headers=tag))
            poison += 1
            continue
        records.append(Record(key, json.dumps({"seq": seq}), headers=tag))
        expected[key].append(seq)
    deleted_key = keys[1]
    records.append(Record(deleted_key, None))  # a tombstone: the handler admits None
    binary_key = b"\xff\xfe" + run.encode()
    if delivery == "consumer":
        # A subscription blocks its partition on such a key (test_blocked_partition.py); the
        # consumer gives it a `b64:` object.
        records.append(Record(binary_key, json.dumps({"seq": 10_000})))
        expected[object_key_for(binary_key)].append(10_000)
    want = total(expected)

    async with restate_app(record_app.app):
        try:
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            subscriptions = [
                s for s in await restate_admin.list_subscriptions() if f"c-{run}" in s.source
            ]
            assert len(subscriptions) == (1 if delivery == "subscription" else 0)
            await asyncio.to_thread(produce_records, stack.bootstrap_servers, topic, records)
            async with batch_deliveries(spec) as runner:
                assert runner.running == ({f"items-{run}"} if delivery == "consumer" else set())

                async def progress() -> tuple[dict[str, list[int]], list[dict[str, Any]], Any]:
                    letters = [
                        parse_record(r.value or b"").to_json()
                        for r in await topic_records(stack.bootstrap_servers, dlq)
                    ]
                    deleted = await object_state(
                        restate_admin, "RecordLog", "deleted", object_key=deleted_key
                    )
                    state = await applied(restate_admin, run, object_key_for(binary_key))
                    return state, letters, deleted

                state, letters, deleted = await wait_until(
                    progress,
                    lambda p: total(p[0]) >= want and len(p[1]) >= poison and bool(p[2]),
                    timeout=240,
                    interval=1.0,
                    describe=lambda p: f"{total(p[0])}/{want} applied, {len(p[1])} letters",
                )
                await wait_drained(stack, spec.bindings[0].consumer_group, topic)
                (status,) = await binding_statuses(spec, restate_admin, TopicAdmin)
                tags = await object_state(restate_admin, "RecordLog", "tags")
        finally:
            await drop_cluster(restate_admin, f"c-{run}")

    for key, seqs in expected.items():
        assert state[key] == seqs, f"{key}: lost, repeated or reordered records"
    assert len(state) == len(expected)
    decode_errors = [d for d in letters if d["error"]["type"] == "DecodeError"]
    assert len(letters) == len(decode_errors) == poison
    assert {d["value"] for d in decode_errors} == {"{not json"}
    assert len({d["source"]["offset"] for d in decode_errors}) == poison, "a letter twice"
    assert deleted == {deleted_key: deleted[deleted_key]}
    assert status.state == ("consumer" if delivery == "consumer" else "active")
    assert status.total_lag == 0
    if delivery == "consumer":
        # The consumer carries the record's Kafka headers; a subscription drops them.
        assert tags[keys[0]] == [f"t{s}" for s in expected[keys[0]]]
        assert status.invocations.get("succeeded", 0) >= want
    else:
        assert keys[0] not in tags


async def test_a_record_sent_again_without_idempotency_key_is_applied_once(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    """RecordLog/on_item keeps a high-water, so the consumer sends its records without an
    idempotency key; a consumer that restarts before its commit sends them all again (so
    does a retried send whose 202 was lost), and the object drops each copy."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = f"items-{run}"
    path = tmp_path / "bindings.yaml"
    path.write_text(bindings_yaml(stack, run, "consumer"))
    spec = load_bindings(path)
    (binding,) = spec.bindings
    bind([record_app.record_log], spec)
    spec = with_high_water([record_app.record_log], spec)
    assert spec.bindings[0].keeps_high_water
    keys = [f"{run}-k{k}" for k in range(6)]
    expected: dict[str, list[int]] = defaultdict(list)
    for seq in range(300):
        expected[keys[seq % len(keys)]].append(seq)
    records = [Record(keys[s % len(keys)], json.dumps({"seq": s})) for s in range(300)]
    pending = (
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'RecordLog' "
        f"AND starts_with(target_service_key, '{run}') AND status <> 'completed'"
    )

    async def settled() -> int:
        return int((await restate_admin.query(pending))[0]["n"])

    async with restate_app(record_app.app):
        try:
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            await asyncio.to_thread(produce_records, stack.bootstrap_servers, topic, records)
            async with batch_deliveries(spec):
                first = await wait_until(
                    lambda: applied(restate_admin, run),
                    lambda s: total(s) >= len(records),
                    timeout=240,
                    interval=1.0,
                    describe=lambda s: f"{total(s)}/{len(records)} applied",
                )
                await wait_drained(stack, binding.consumer_group, topic)
            # As after a consumer killed before its commit: every record is read and sent again.
            await asyncio.to_thread(
                TopicAdmin(stack.bootstrap_servers).set_group_offsets,
                binding.consumer_group,
                topic,
                {0: 0, 1: 0},
            )
            async with batch_deliveries(spec) as runner:
                await wait_drained(stack, binding.consumer_group, topic)
                resent = runner.deliveries[binding.name].delivered
            await wait_until(settled, lambda n: n == 0, timeout=120, describe=str)
            final = await applied(restate_admin, run)
            # Status selects the keyless sends by SQL that the engine must accept.
            (status,) = await binding_statuses(spec, restate_admin, TopicAdmin)
            keyed = await restate_admin.query(
                "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = "
                "'RecordLog' AND starts_with(idempotency_key, 'rs-record/')"
                f" AND starts_with(target_service_key, '{run}')"
            )
        finally:
            await drop_cluster(restate_admin, f"c-{run}")
    assert resent == len(records), "the second consumer did not send every record again"
    assert int(keyed[0]["n"]) == 0, "sends carried idempotency keys"
    assert status.state == "consumer" and status.total_lag == 0
    assert not status.stuck_keys
    assert first == expected
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: a record sent again was applied again"


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_exactly_once_through_a_worker_sigkill(
    delivery: str, restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    records, keys = 4_000, 40
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = f"items-{run}"
    port = free_ports(1)[0]
    worker_line = (
        f'worker: {{app: "tests.integration.record_app:app", uri: "http://127.0.0.1:{port}"}}\n'
    )
    path = tmp_path / "bindings.yaml"
    path.write_text(bindings_yaml(stack, run, delivery, worker_line))
    spec = load_bindings(path)
    expected: dict[str, list[int]] = defaultdict(list)
    for s in range(records):
        expected[f"{run}-k{s % keys}"].append(s)

    def produce(seqs: range) -> None:
        produce_records(
            stack.bootstrap_servers,
            topic,
            (Record(f"{run}-k{s % keys}", json.dumps({"seq": s})) for s in seqs),
        )

    started = 0

    def start() -> WorkerProcess:
        nonlocal started
        started += 1
        worker = WorkerProcess(
            "tests.integration.record_app:app",
            tmp_path / f"worker-{started}.log",
            port=port,
            processes=1,
            cwd=REPO,
            bindings=path,
        )
        worker.start(timeout=60)
        return worker

    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 2)
    await asyncio.to_thread(produce, range(records // 2))
    worker = start()
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        await wait_until(
            lambda: applied(restate_admin, run),
            lambda s: total(s) >= 600,
            timeout=240,
            interval=0.2,
            describe=lambda s: f"{total(s)} applied",
        )
        kill_group(worker)  # mid-stream: sends in flight, offsets not all committed
        await asyncio.to_thread(produce, range(records // 2, records))
        worker = start()
        final = await wait_until(
            lambda: applied(restate_admin, run),
            lambda s: total(s) >= records,
            timeout=300,
            interval=1.0,
            describe=lambda s: f"{total(s)}/{records} applied",
        )
        await wait_drained(stack, spec.bindings[0].consumer_group, topic)
        final = await applied(restate_admin, run)
    finally:
        worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    assert started == 2
    assert len(final) == keys
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: lost, repeated or reordered records"

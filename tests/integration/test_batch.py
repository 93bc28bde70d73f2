"""Batched bindings on the real engines: restate-stream's own consumer sends one invocation
per key per batch through Restate's ingress; the object's high-water offsets make redelivery
(after SIGKILLs, rebalances) change nothing twice; poison records are dead letters alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors import Record, TopicAdmin, produce_records
from connectors.group_consumer import PolledRecord
from restate_stream._util.ports import free_ports
from restate_stream.batch.ingress_client import IngressClient
from restate_stream.batch.pacing import CompletionPacer
from restate_stream.batch.sends import shape_for
from restate_stream.bindings import Binding, check_against_app, load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.bound import bind
from restate_stream.runtime.dead_letter import parse_record
from restate_stream.runtime.event import object_key_for
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    ServedApp,
    batch_deliveries,
    drop_cluster,
    object_state,
    topic_records,
    wait_until,
)
from tests.integration import batch_app

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]


def bindings_yaml(
    stack: LocalStack,
    run: str,
    *,
    partitions: int,
    batch: str,
    extra: str = "",
    worker: str = "",
    handler: str = "BatchLog/on_items",
) -> str:
    return f"""\
restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}
kafka:
  clusters:
    c-{run}: {{bootstrap.servers: "{stack.bootstrap_servers}"}}
topics:
  items-{run}: {{cluster: c-{run}, partitions: {partitions}}}
{worker}bindings:
  - name: items-{run}
    topic: items-{run}
    handler: {handler}
    batch: {batch}
{extra}"""


async def applied(
    admin: AdminClient, run: str = "", service: str = "BatchLog"
) -> dict[str, list[int]]:
    """Applied sequence numbers by key, of this test's keys (they start with its run id)."""
    state = await object_state(admin, service, "seqs")
    return {k: v for k, v in state.items() if k.startswith(run)}


def total(state: dict[str, list[int]]) -> int:
    return sum(len(v) for v in state.values())


async def test_poison_records_in_batches_are_dead_letters_and_neighbours_apply(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: Callable[[Any], AbstractAsyncContextManager[ServedApp]],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic, dlq = f"items-{run}", f"items-{run}.dlq"
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            stack,
            run,
            partitions=2,
            batch="{max_records: 100, max_wait: 20ms}",
            extra=f"    dead_letter: {dlq}\n",
        )
    )
    spec = load_bindings(path)
    check_against_app(spec, [batch_app.batch_log])
    assert bind([batch_app.batch_log], spec) == ["BatchLog/on_items"]
    admin = TopicAdmin(stack.bootstrap_servers)
    admin.create_topic(topic, 2)
    admin.create_topic(dlq, 1)

    # 8 text keys and one key that is not UTF-8; every 13th record is not JSON; one record of
    # key k3 makes the handler raise TerminalError (its whole invocation is dead-lettered).
    binary_key = b"\xff\xfe" + run.encode()
    keys: list[bytes] = [f"{run}-k{k}".encode() for k in range(8)] + [binary_key]
    records: list[Record] = []
    expected: dict[str, list[int]] = defaultdict(list)
    poison_seqs: set[int] = set()
    terminal_seq = 500
    terminal_key = object_key_for(keys[500 % len(keys)])
    for seq in range(1_800):
        key = keys[seq % len(keys)]
        tag = [("tag", f"t{seq}".encode())]
        if seq % 13 == 0:
            records.append(Record(key, b"{not json", headers=tag))
            poison_seqs.add(seq)
            continue
        value: dict[str, Any] = {"seq": seq}
        if seq == terminal_seq:
            value["fail"] = "terminal"
        records.append(Record(key, json.dumps(value), headers=tag))
        expected[object_key_for(key)].append(seq)
    # Keyless records: one object, key "" (documented in docs/architecture.md).
    for seq in range(2_000, 2_005):
        records.append(Record(None, json.dumps({"seq": seq})))
        expected[""].append(seq)
    produce_records(stack.bootstrap_servers, topic, records)
    decodable = sum(len(v) for v in expected.values())

    async with restate_app(batch_app.app), batch_deliveries(spec) as runner:
        try:

            async def progress() -> tuple[dict[str, list[int]], list[dict[str, Any]]]:
                state = {k: v for k, v in (await applied(restate_admin)).items() if k in expected}
                letters = [
                    parse_record(r.value or b"").to_json()
                    for r in await topic_records(stack.bootstrap_servers, dlq)
                ]
                return state, letters

            def settled(p: tuple[dict[str, list[int]], list[dict[str, Any]]]) -> bool:
                state, letters = p
                refused = [d for d in letters if d["error"]["type"] == "TerminalError"]
                decode = [d for d in letters if d["error"]["type"] == "DecodeError"]
                return total(state) + len(refused) >= decodable and len(decode) >= len(poison_seqs)

            state, letters = await wait_until(
                progress,
                settled,
                timeout=120,
                describe=lambda p: f"{total(p[0])} applied, {len(p[1])} dead letters",
            )
            tags = await object_state(restate_admin, "BatchLog", "tags")
            # Where a key's next send waited for its previous invocation through the ingress
            # attach (after a one-way send: a backlog being read), it was answered once that
            # completed, with its output (200) or its failure (the TerminalError one), never
            # "not found" (that every key's attach finds its invocation: the test below).
            pacer = runner.deliveries[f"items-{run}"]._pacer
            assert pacer is not None and set(pacer.answers) <= {200, 500}, pacer.answers
        finally:
            await drop_cluster(restate_admin, f"c-{run}")

    decode_errors = [d for d in letters if d["error"]["type"] == "DecodeError"]
    refused = [d for d in letters if d["error"]["type"] == "TerminalError"]
    assert {d["value"] for d in decode_errors} == {"{not json"}
    assert len(decode_errors) == len(poison_seqs)
    # Each poison record alone, at its own offset; none twice.
    assert len({(d["source"]["partition"], d["source"]["offset"]) for d in decode_errors}) == len(
        poison_seqs
    )
    refused_seqs = [json.loads(d["value"])["seq"] for d in refused]
    assert terminal_seq in refused_seqs
    assert {d["key"] for d in refused} == {terminal_key}
    for key, seqs in expected.items():
        if key == terminal_key:
            # The refused invocation's records are dead letters; the key moved on after them.
            assert sorted(refused_seqs) == sorted(set(refused_seqs))
            assert state[key] == [s for s in seqs if s not in refused_seqs]
            assert state[key][-1] == seqs[-1]
        elif key == "":
            # Keyless records land on any partition: one object, ordered per partition only.
            assert sorted(state[key]) == seqs
        else:
            assert state[key] == seqs, f"{key}: lost, repeated or reordered records"
    binary_object = object_key_for(binary_key)
    assert binary_object.startswith("b64:") and binary_object in state
    assert tags[f"{run}-k1"] == [f"t{s}" for s in expected[f"{run}-k1"]]


async def test_an_attach_finds_the_invocation_of_a_one_way_send_whatever_its_key(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: Callable[[Any], AbstractAsyncContextManager[ServedApp]],
    tmp_path: Path,
) -> None:
    """After a one-way send (a backlog being read), a key's next send learns that invocation's
    completion through the ingress attach by idempotency key (batch/pacing.py): it finds the
    invocation for a text key, a key that is not UTF-8 (its `b64:` object) and the empty key
    of keyless records, and is answered once it completed (200), never "not found"."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(stack, run, partitions=1, batch="{max_records: 100, max_wait: 20ms}")
    )
    spec = load_bindings(path)
    assert bind([batch_app.batch_log], spec) == ["BatchLog/on_items"]
    (binding,) = spec.bindings
    assert isinstance(binding, Binding)
    shape = shape_for(binding)
    raw_keys = [f"{run}-text".encode(), b"\xff\xfe" + run.encode(), None]
    pacer = CompletionPacer(completion_wait=60)  # waits for the answer, however slow
    async with restate_app(batch_app.app), aiohttp.ClientSession() as attach_client:
        client = IngressClient(stack.ingress_url, connections=2)
        pacer.open(attach_client, stack.ingress_url)
        try:
            for offset, raw_key in enumerate(raw_keys):
                value = json.dumps({"seq": offset}).encode()
                record = PolledRecord(
                    binding.topic, 0, offset, 1_700_000_000_000, raw_key, value, ()
                )
                key = shape.object_key(record)
                request = shape.request(key, [record])
                answer = await client.post(request.path, request.body, request.headers)
                assert answer.status == 202, answer.text()
                idempotency_key = request.headers["idempotency-key"]
                pacer.accepted(key, binding.service, binding.handler, idempotency_key)
                await pacer.wait(key)  # as the key's next send would
        finally:
            await client.close()
            await pacer.close()
    assert pacer.answers == {200: len(raw_keys)}, pacer.answers
    state = await applied(restate_admin)
    assert state[f"{run}-text"] == [0]
    assert state[object_key_for(raw_keys[1])] == [1]


def kill_group(worker: WorkerProcess) -> None:
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.stop()  # reaps; the group is already gone


class WorkerHarness:
    def __init__(
        self,
        stack: LocalStack,
        tmp: Path,
        run: str,
        batch: str,
        processes: int,
        handler: str = "BatchLog/on_items",
        extra: str = "",
    ) -> None:
        self.stack, self.tmp, self.run = stack, tmp, run
        self.port = free_ports(1)[0]
        self.processes = processes
        self.bindings = tmp / "bindings.yaml"
        worker = (
            f'worker: {{app: "tests.integration.batch_app:app", '
            f'uri: "http://127.0.0.1:{self.port}", processes: {processes}}}\n'
        )
        self.bindings.write_text(
            bindings_yaml(
                stack, run, partitions=4, batch=batch, worker=worker, handler=handler, extra=extra
            )
        )
        self.started = 0

    def start(self, processes: int | None = None, port: int | None = None) -> WorkerProcess:
        self.started += 1
        worker = WorkerProcess(
            "tests.integration.batch_app:app",
            self.tmp / f"worker-{self.started}.log",
            port=port or self.port,
            processes=processes or self.processes,
            cwd=REPO,
            bindings=self.bindings,
        )
        worker.start(timeout=60)
        return worker


def produce_items(bootstrap: str, topic: str, run: str, seqs: range, keys: int) -> None:
    produce_records(
        bootstrap, topic, (Record(f"{run}-k{s % keys}", json.dumps({"seq": s})) for s in seqs)
    )


async def wait_exact(
    admin: AdminClient,
    stack: LocalStack,
    group: str,
    run: str,
    expected: dict[str, list[int]],
    service: str = "BatchLog",
) -> dict[str, list[int]]:
    """State once every record is applied and the group committed to the end of the topic."""
    want = sum(len(v) for v in expected.values())
    topic = f"items-{run}"
    await wait_until(
        lambda: applied(admin, run, service),
        lambda s: total(s) >= want,
        timeout=300,
        interval=1.0,
        describe=lambda s: f"{total(s)}/{want} applied",
    )
    kafka = TopicAdmin(stack.bootstrap_servers)

    async def lag() -> int:
        return sum(p.lag for p in await asyncio.to_thread(kafka.group_lag, group, topic))

    await wait_until(lag, lambda n: n == 0, timeout=300, describe=lambda n: f"lag {n}")
    return await applied(admin, run, service)


async def test_batch_binding_exactly_once_through_two_sigkills(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    records, keys = 50_000, 200
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = f"items-{run}"
    h = WorkerHarness(stack, tmp_path, run, "{max_records: 500, max_wait: 20ms}", processes=1)
    spec = load_bindings(h.bindings)
    expected: dict[str, list[int]] = defaultdict(list)
    for s in range(records):
        expected[f"{run}-k{s % keys}"].append(s)

    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 4)
    await asyncio.to_thread(produce_items, stack.bootstrap_servers, topic, run, range(20_000), keys)
    worker = h.start()
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        assert not await restate_admin.list_subscriptions() or all(
            f"c-{run}" not in s.source for s in await restate_admin.list_subscriptions()
        ), "a batched binding must have no Restate subscription"
        for kill_at, more in ((5_000, range(20_000, records)), (30_000, range(0))):
            await wait_until(
                lambda: applied(restate_admin, run),
                lambda s, n=kill_at: total(s) >= n,  # type: ignore[misc]
                timeout=240,
                interval=0.2,
                describe=lambda s: f"{total(s)} applied",
            )
            kill_group(worker)
            if more:
                await asyncio.to_thread(
                    produce_items, stack.bootstrap_servers, topic, run, more, keys
                )
            worker = h.start()
        final = await wait_exact(
            restate_admin, stack, spec.bindings[0].consumer_group, run, expected
        )
    finally:
        worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    assert h.started == 3
    assert len(final) == keys
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: lost, repeated or reordered records"


async def test_a_values_handler_applies_exactly_once_through_a_sigkill(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """A handler of values (`values: list[dict]`): its batches reach it from the body's
    columns (no events built), redelivery after a SIGKILL changes nothing twice, and a value
    that is not JSON is dead-lettered alone while its neighbours apply."""
    records, keys = 30_000, 100
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic, dlq = f"items-{run}", f"items-{run}.dlq"
    h = WorkerHarness(
        stack, tmp_path, run, "{max_records: 1000, max_wait: 20ms}", processes=1,
        handler="ValuesLog/on_values", extra=f"    dead_letter: {dlq}\n",
    )  # fmt: skip
    spec = load_bindings(h.bindings)
    poison = {7_001: f"{run}-k1", 19_002: f"{run}-k2"}  # seq -> key: one record each
    expected: dict[str, list[int]] = defaultdict(list)
    for s in range(records):
        if s not in poison:
            expected[f"{run}-k{s % keys}"].append(s)

    def produce(seqs: range) -> None:
        produce_records(
            stack.bootstrap_servers,
            topic,
            (
                Record(poison[s], b"{not json") if s in poison
                else Record(f"{run}-k{s % keys}", json.dumps({"seq": s}))
                for s in seqs
            ),
        )  # fmt: skip

    kafka = TopicAdmin(stack.bootstrap_servers)
    kafka.create_topic(topic, 4)
    kafka.create_topic(dlq, 1)
    await asyncio.to_thread(produce, range(15_000))
    worker = h.start()
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        await wait_until(
            lambda: applied(restate_admin, run, "ValuesLog"),
            lambda s: total(s) >= 4_000,
            timeout=240,
            interval=0.2,
            describe=lambda s: f"{total(s)} applied",
        )
        kill_group(worker)
        await asyncio.to_thread(produce, range(15_000, records))
        worker = h.start()
        final = await wait_exact(
            restate_admin, stack, spec.bindings[0].consumer_group, run, expected, "ValuesLog"
        )
        letters = [
            parse_record(r.value or b"").to_json()
            for r in await topic_records(stack.bootstrap_servers, dlq)
        ]
    finally:
        worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    assert len(final) == keys
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: lost, repeated or reordered records"
    assert sorted((d["key"], d["error"]["type"], d["value"]) for d in letters) == sorted(
        (key, "DecodeError", "{not json") for key in poison.values()
    )


async def test_batch_binding_exactly_once_across_rebalances(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """A worker of two processes; a second worker joins the group mid-stream (rebalance) and
    later leaves it (rebalance again); every key's state is exactly what was produced."""
    records, keys = 30_000, 200
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = f"items-{run}"
    h = WorkerHarness(stack, tmp_path, run, "{max_records: 300, max_wait: 20ms}", processes=2)
    spec = load_bindings(h.bindings)
    group = spec.bindings[0].consumer_group
    expected: dict[str, list[int]] = defaultdict(list)
    for s in range(records):
        expected[f"{run}-k{s % keys}"].append(s)

    kafka = TopicAdmin(stack.bootstrap_servers)
    kafka.create_topic(topic, 4)
    half = records // 2
    await asyncio.to_thread(produce_items, stack.bootstrap_servers, topic, run, range(half), keys)
    first = h.start()
    second: WorkerProcess | None = None
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        await wait_until(
            lambda: applied(restate_admin, run),
            lambda s: total(s) >= 3_000,
            timeout=240,
            describe=lambda s: f"{total(s)} applied",
        )
        # Not registered with Restate: it only joins the group (its sends go to the ingress).
        second = h.start(processes=1, port=free_ports(1)[0])
        await asyncio.to_thread(
            produce_items, stack.bootstrap_servers, topic, run, range(half, records), keys
        )
        # The second worker takes partitions while records flow (its log says so) ...
        second_log = tmp_path / "worker-2.log"
        await wait_until(
            lambda: asyncio.to_thread(second_log.read_text),
            lambda text: "assigned" in text,
            timeout=120,
            describe=lambda text: "worker 2 not assigned yet",
        )
        await wait_until(
            lambda: applied(restate_admin, run),
            lambda s: total(s) >= half + 3_000,
            timeout=240,
            describe=lambda s: f"{total(s)} applied",
        )
        second.stop()  # ... and leaves the group: its partitions move back mid-stream
        final = await wait_exact(restate_admin, stack, group, run, expected)
    finally:
        if second is not None:
            second.stop()
        first.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    assert len(final) == keys
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: lost, repeated or reordered records"


async def test_per_partition_batches_exactly_once_through_a_sigkill(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """`per: partition` (many keys, few objects): one object per source partition holds each
    record key's sequence numbers; a SIGKILL mid-stream loses, repeats and reorders none."""
    records, keys = 20_000, 2_000
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = f"items-{run}"
    h = WorkerHarness(
        stack,
        tmp_path,
        run,
        "{max_records: 1000, max_wait: 20ms, per: partition}",
        processes=1,
        handler="PartitionLog/on_partition",
    )
    spec = load_bindings(h.bindings)
    expected: dict[str, list[int]] = defaultdict(list)
    for s in range(records):
        expected[f"{run}-k{s % keys}"].append(s)

    async def by_key() -> dict[str, list[int]]:
        state = await object_state(restate_admin, "PartitionLog", "seqs_by_key")
        merged: dict[str, list[int]] = {}
        for obj, seqs in state.items():
            if obj.startswith(f"{topic}/"):
                for key, values in seqs.items():
                    assert key not in merged, f"{key} applied in two partition objects"
                    merged[key] = values
        return merged

    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 4)
    await asyncio.to_thread(
        produce_items, stack.bootstrap_servers, topic, run, range(records), keys
    )
    worker = h.start()
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        await wait_until(
            by_key, lambda s: total(s) >= 4_000, timeout=240, describe=lambda s: f"{total(s)}"
        )
        kill_group(worker)
        worker = h.start()
        await wait_until(
            by_key,
            lambda s: total(s) >= records,
            timeout=300,
            interval=1.0,
            describe=lambda s: f"{total(s)}/{records} applied",
        )
        kafka = TopicAdmin(stack.bootstrap_servers)
        group = spec.bindings[0].consumer_group

        async def lag() -> int:
            return sum(p.lag for p in await asyncio.to_thread(kafka.group_lag, group, topic))

        # Every send accepted: a record applied twice would show in the state read after.
        await wait_until(lag, lambda n: n == 0, timeout=300, describe=lambda n: f"lag {n}")
        objects = await object_state(restate_admin, "PartitionLog", "seqs_by_key")
        final = await by_key()
    finally:
        worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    assert sorted(o for o in objects if o.startswith(f"{topic}/")) == [
        f"{topic}/{p}" for p in range(4)
    ]
    assert h.started == 2
    assert len(final) == keys
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: lost, repeated or reordered records"

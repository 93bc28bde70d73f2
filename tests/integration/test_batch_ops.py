"""Operating batched bindings on the real engines: status (invocations and stuck keys of
ingress sends), pause/resume of a running worker's consumer, dlq redrive of batch records."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.ports import free_ports
from restate_stream.batch import BatchRunner
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.status import BindingStatus, binding_statuses
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import object_key_for
from restate_stream.runtime.formats import unwrap_cloudevent
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    run_cli,
    topic_records,
    wait_until,
)
from tests.integration import batch_ops_app

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def handler_broken() -> Iterator[None]:
    batch_ops_app.FIXED["value"] = False
    yield
    batch_ops_app.FIXED["value"] = False


def write_bindings(
    stack: LocalStack, path: Path, run: str, service: str, batched: bool = True, **extra: Any
) -> tuple[str, str]:
    """A bindings file with one binding `items-<run>` (batched: to `on_items`, else to
    `on_item`); (topic, cluster)."""
    topic, cluster = f"items-{run}", f"c-{run}"
    worker = extra.pop("_worker", None)
    path.write_text(
        bindings_yaml(
            admin_url=stack.admin_url,
            ingress_url=stack.ingress_url,
            clusters={cluster: stack.bootstrap_servers},
            topics={topic: {"cluster": cluster, "partitions": 2}},
            bindings=[
                {
                    "name": topic,
                    "topic": topic,
                    "handler": f"{service}/on_items" if batched else f"{service}/on_item",
                    **({"batch": {"max_records": 50, "max_wait": "20ms"}} if batched else {}),
                    **extra,
                }
            ],
            worker=worker,
        )
    )
    return topic, cluster


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, dict[str, Any]]]) -> None:
    produce_records(bootstrap, topic, (Record(k, json.dumps(v)) for k, v in items))


async def seqs_of(admin: AdminClient, service: str, keys: set[str]) -> dict[str, list[int]]:
    return await seqs_of_state(admin, service, "seqs", keys)


async def seqs_of_state(
    admin: AdminClient, service: str, state_key: str, keys: set[str]
) -> dict[str, list[int]]:
    state = await object_state(admin, service, state_key)
    return {k: v for k, v in state.items() if k in keys}


def flat(state: dict[str, list[int]]) -> Counter[int]:
    return Counter(s for v in state.values() for s in v)


async def test_status_counts_batch_invocations_and_shows_stuck_keys(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
    handler_broken: None,
) -> None:
    """A batched binding has no subscription: status finds its ingress sends by target and
    idempotency key, counts them by state and names the key that retries, with its failure."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    path = tmp_path / "bindings.yaml"
    retry = {"initial_interval": "100ms", "max_interval": "500ms"}
    topic, cluster = write_bindings(stack, path, run, "BatchOps", retry=retry)
    spec = load_bindings(path)
    bind([batch_ops_app.batch_ops], spec)
    good, stuck = f"{run}-good", f"{run}-stuck"
    async with restate_app(batch_ops_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        runner = BatchRunner(spec)
        await runner.start()
        try:
            items: list[tuple[bytes | None, dict[str, Any]]]
            items = [(good.encode(), {"seq": s}) for s in range(5)]
            items.append((stuck.encode(), {"seq": 5, "fail": "retry"}))
            await asyncio.to_thread(produce, stack.bootstrap_servers, topic, items)

            async def status() -> BindingStatus:
                (s,) = await binding_statuses(spec, restate_admin, TopicAdmin)
                return s

            def shows_stuck(s: BindingStatus) -> bool:
                keys = {k["key"]: k for k in s.stuck_keys}
                return (
                    stuck in keys
                    and "not yet" in (keys[stuck].get("last_failure") or "")
                    and s.invocations.get("succeeded", 0) >= 1
                    # The key alternates between retrying and backing off: take a snapshot in
                    # which both queries (stuck keys, counts) saw it backing off.
                    and s.invocations.get("backing-off") == 1
                )

            s = await wait_until(status, shows_stuck, timeout=60, describe=repr)
            assert s.state == "batched" and s.subscription_ids == []
            assert [k["key"] for k in s.stuck_keys] == [stuck], s.stuck_keys
            assert s.stuck_keys[0]["status"] == "backing-off"
            assert s.invocations.get("backing-off") == 1, s.invocations
            assert sum(s.invocations.values()) <= len(items), s.invocations  # only this binding's
            assert {p.partition for p in s.lag} == {0, 1}
            # The stuck key's send was a call that outlived the completion wait: its acceptance
            # was asked by a one-way send, so its offset is committed while it retries (not
            # after the call's 30 s client timeout).
            await wait_until(
                status, lambda s: s.total_lag == 0 and bool(s.stuck_keys), timeout=15,
                describe=repr,
            )  # fmt: skip

            # Each CLI run takes its own snapshot, and between backoffs the key is briefly
            # running (not stuck): ask again until a snapshot caught it backing off.
            def cli_status(
                *extra: str,
            ) -> Callable[[], Awaitable[subprocess.CompletedProcess[str]]]:
                async def probe() -> subprocess.CompletedProcess[str]:
                    done = await asyncio.to_thread(run_cli, "status", "-f", str(path), *extra)
                    assert done.returncode == 0, done.stdout + done.stderr
                    return done

                return probe

            def row_stuck(done: subprocess.CompletedProcess[str]) -> bool:
                (row,) = json.loads(done.stdout)
                return bool(
                    row["stuck_keys"]
                    and row["stuck_keys"][0]["key"] == stuck
                    and row["invocations"].get("backing-off") == 1
                )

            text = await wait_until(
                cli_status(),
                lambda t: f"stuck key '{stuck}': backing-off" in t.stdout,
                timeout=60,
                describe=lambda t: t.stdout,
            )
            assert "batched" in text.stdout and "own consumer" in text.stdout, text.stdout
            await wait_until(
                cli_status("--json"), row_stuck, timeout=60, describe=lambda t: t.stdout
            )

            batch_ops_app.FIXED["value"] = True  # the fix: its retry goes through
            s = await wait_until(
                status,
                # Stuck keys and counts are two queries: wait until both saw every send succeed.
                lambda s: (
                    not s.stuck_keys and s.total_lag == 0 and set(s.invocations) == {"succeeded"}
                ),
                timeout=60,
                describe=repr,
            )
            state = await seqs_of(restate_admin, "BatchOps", {good, stuck})
            assert state == {good: [0, 1, 2, 3, 4], stuck: [5]}
        finally:
            await runner.stop()
            await drop_cluster(restate_admin, cluster)


async def test_redrive_of_a_batch_dead_letter_applies_it_once(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
    handler_broken: None,
) -> None:
    """A refused record dead-letters its key's whole invocation (non-UTF-8 key included);
    after the fix, redrive sends each letter as a one-record batch that the object takes
    although it is below its high-water; each is applied once, and a second redrive sends
    nothing."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    bootstrap = stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    dlq = f"items-{run}.dlq"
    topic, cluster = write_bindings(stack, path, run, "BatchOps", dead_letter=dlq)
    spec = load_bindings(path)
    bind([batch_ops_app.batch_ops], spec)
    name = f"items-{run}"
    binary = b"\xff\xfe" + run.encode()
    keys = [f"{run}-a".encode(), f"{run}-b".encode(), binary]
    items: list[tuple[bytes | None, dict[str, Any]]] = []
    for seq in range(30):
        value: dict[str, Any] = {"seq": seq}
        if seq == 14:  # key `binary`
            value["fail"] = "terminal"
        items.append((keys[seq % 3], value))
    object_keys = {object_key_for(k) for k in keys}

    def listed() -> list[dict[str, Any]]:
        done = run_cli("dlq", "list", name, "-f", str(path), "--json")
        assert done.returncode == 0, done.stderr
        entries: list[dict[str, Any]] = json.loads(done.stdout)
        return entries

    def redrive() -> subprocess.CompletedProcess[str]:
        return run_cli("dlq", "redrive", name, "-f", str(path))

    async with restate_app(batch_ops_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        runner = BatchRunner(spec)
        await runner.start()
        try:
            await asyncio.to_thread(produce, bootstrap, topic, items)

            async def progress() -> tuple[int, int]:
                applied = sum(flat(await seqs_of(restate_admin, "BatchOps", object_keys)).values())
                letters = len(await topic_records(bootstrap, dlq))
                return applied, letters

            _, letters = await wait_until(
                progress, lambda p: p[0] + p[1] >= 30 and p[1] >= 1, timeout=60
            )
            entries = listed()
            assert len(entries) == letters >= 1
            assert all(e["key"] is not None and not e["resolved"] for e in entries)
            refused = [e for e in entries if json.loads(e["history"][0]["value"])["seq"] == 14]
            assert len(refused) == 1 and refused[0]["latest"]["error"]["type"] == "TerminalError"
            assert "key_base64" in refused[0]["history"][0], refused[0]  # the raw key is kept
            before = await seqs_of(restate_admin, "BatchOps", object_keys)
            assert 14 not in flat(before)

            batch_ops_app.FIXED["value"] = True
            first = redrive()
            assert first.returncode == 0, first.stdout + first.stderr
            assert f"{letters} source record(s)" in first.stdout, first.stdout
            after = await seqs_of(restate_admin, "BatchOps", object_keys)
            assert flat(after) == Counter(range(30)), after  # every record exactly once
            assert all(e["resolved"] for e in listed())

            dlq_size = len(await topic_records(bootstrap, dlq))
            second = redrive()
            assert second.returncode == 0, second.stdout + second.stderr
            assert "nothing to do" in second.stdout or "0 source record" in second.stdout, (
                second.stdout
            )
            assert flat(await seqs_of(restate_admin, "BatchOps", object_keys)) == Counter(range(30))
            assert len(await topic_records(bootstrap, dlq)) == dlq_size  # nothing was sent
        finally:
            await runner.stop()
            await drop_cluster(restate_admin, cluster)


async def test_pause_stops_a_running_workers_consumer_and_resume_continues(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """`pause` on a running worker: its consumer commits and leaves the group, records
    produced meanwhile wait; `resume` continues from there in the same worker process, and
    every record is applied exactly once."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    bootstrap = stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    port = free_ports(1)[0]
    worker_section = {
        "app": "tests.integration.batch_app:app",
        "uri": f"http://127.0.0.1:{port}",
        "processes": 2,
    }
    topic, cluster = write_bindings(stack, path, run, "BatchLog", _worker=worker_section)
    spec = load_bindings(path)
    (binding,) = spec.bindings
    group = binding.consumer_group
    keys = [f"{run}-k{k}" for k in range(5)]
    kafka = TopicAdmin(bootstrap)

    def items(seqs: range) -> list[tuple[bytes | None, dict[str, Any]]]:
        return [(keys[s % 5].encode(), {"seq": s}) for s in seqs]

    async def applied() -> dict[str, list[int]]:
        return await seqs_of(restate_admin, "BatchLog", set(keys))

    async def lag() -> int:
        return sum(p.lag for p in await asyncio.to_thread(kafka.group_lag, group, topic))

    async def members() -> bool:
        return await asyncio.to_thread(kafka.group_has_members, group)

    def expected(seqs: range) -> dict[str, list[int]]:
        return {k: [s for s in seqs if keys[s % 5] == k] for k in keys}

    worker = WorkerProcess(
        "tests.integration.batch_app:app",
        tmp_path / "worker.log",
        port=port,
        processes=2,
        cwd=REPO,
        bindings=path,
    )
    worker.start(timeout=60)
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        assert worker.process is not None
        pid = worker.process.pid
        await asyncio.to_thread(produce, bootstrap, topic, items(range(50)))
        await wait_until(applied, lambda s: s == expected(range(50)), timeout=90)
        await wait_until(lag, lambda n: n == 0, timeout=60)

        paused = run_cli("pause", binding.name, "-f", str(path))
        assert paused.returncode == 0, paused.stdout + paused.stderr
        # Both worker processes' consumers left the group: nothing can consume any more.
        await wait_until(members, lambda m: not m, timeout=60)
        await asyncio.to_thread(produce, bootstrap, topic, items(range(50, 100)))
        assert await lag() == 50, "records produced while paused are waiting"
        assert await applied() == expected(range(50)), "nothing was applied while paused"

        resumed = run_cli("resume", binding.name, "-f", str(path))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        await wait_until(applied, lambda s: flat(s).total() >= 100, timeout=90, describe=repr)
        await wait_until(lag, lambda n: n == 0, timeout=60)
        assert await applied() == expected(range(100)), "each record applied once, in order"
        assert worker.process.running() and worker.process.pid == pid, "not restarted"
    finally:
        worker.stop()
        await drop_cluster(restate_admin, cluster)


async def test_switching_between_batched_and_unbatched_neither_replays_nor_skips(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    """Unbatched -> batched -> unbatched on one consumer group, with records produced in
    each phase and the switch made while earlier ones are still being applied: apply deletes
    and recreates the subscription, the worker's consumer starts and stops, and every record
    is applied exactly once, per key in order."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    bootstrap = stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    topic = f"items-{run}"
    keys = [f"{run}-k{k}" for k in range(5)]

    def write(batched: bool) -> Any:
        extra: dict[str, Any] = {"group": f"switch-{run}"}
        if batched:
            write_bindings(stack, path, run, "SwitchLog", **extra)
        else:
            write_bindings(stack, path, run, "SwitchLog", **extra)
            text = path.read_text().replace("on_items", "on_item")
            text = "".join(
                line
                for line in text.splitlines(keepends=True)
                if "batch" not in line and "max_records" not in line and "max_wait" not in line
            )
            path.write_text(text)
        spec = load_bindings(path)
        assert (spec.bindings[0].batch is not None) == batched, path.read_text()
        return spec

    unbatched, batched = write(False), write(True)
    bind([batch_ops_app.switch_log], unbatched)
    bind([batch_ops_app.switch_log], batched)
    group = batched.bindings[0].consumer_group
    assert group == unbatched.bindings[0].consumer_group
    kafka = TopicAdmin(bootstrap)

    def items(seqs: range) -> list[tuple[bytes | None, dict[str, Any]]]:
        return [(keys[s % 5].encode(), {"seq": s}) for s in seqs]

    async def applied() -> dict[str, list[int]]:
        return await seqs_of(restate_admin, "SwitchLog", set(keys))

    async def lag() -> int:
        return sum(p.lag for p in await asyncio.to_thread(kafka.group_lag, group, topic))

    async with restate_app(batch_ops_app.app):
        runner: BatchRunner | None = None
        try:
            spec = write(False)
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            await asyncio.to_thread(produce, bootstrap, topic, items(range(300)))
            await wait_until(applied, lambda s: flat(s).total() >= 50, timeout=90)

            spec = write(True)  # to batched, while the subscription is still applying
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            assert not [s for s in await restate_admin.list_subscriptions() if topic in s.source]
            runner = BatchRunner(spec)
            await runner.start()
            await asyncio.to_thread(produce, bootstrap, topic, items(range(300, 600)))
            await wait_until(applied, lambda s: flat(s).total() >= 400, timeout=90)

            await runner.stop()  # to unbatched: the consumer commits what was accepted, leaves
            runner = None
            spec = write(False)
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            await asyncio.to_thread(produce, bootstrap, topic, items(range(600, 900)))
            await wait_until(applied, lambda s: flat(s).total() >= 900, timeout=120, describe=repr)
            await wait_until(lag, lambda n: n == 0, timeout=60)
            state = await applied()
            assert flat(state) == Counter(range(900)), {
                "missing": sorted(set(range(900)) - set(flat(state))),
                "twice": sorted(s for s, n in flat(state).items() if n > 1),
            }
            assert all(v == sorted(v) for v in state.values()), "per key in order"
        finally:
            if runner is not None:
                await runner.stop()
            await drop_cluster(restate_admin, f"c-{run}")


async def test_tombstones_and_keyless_records_batched_and_unbatched(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    """A null value reaches a handler declaring `KafkaEvent[T | None]` as None (Restate's
    subscription sends it as an empty body; the batch body says null), and is a dead letter
    of type Tombstone for one declaring `KafkaEvent[T]`; keyless records go to object ""."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    bootstrap = stack.bootstrap_servers
    topic, dlq, cluster = f"del-{run}", f"del-{run}.dlq", f"c-{run}"
    batch = {"max_records": 50, "max_wait": "20ms"}
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=stack.admin_url,
            ingress_url=stack.ingress_url,
            clusters={cluster: bootstrap},
            topics={topic: {"cluster": cluster, "partitions": 1}, dlq: {"cluster": cluster}},
            bindings=[
                {"name": f"u-{run}", "topic": topic, "handler": "Deletable/on_item_or_delete"},
                {
                    "name": f"b-{run}",
                    "topic": topic,
                    "handler": "Deletable/on_items_or_deletes",
                    "batch": batch,
                },
                {
                    "name": f"su-{run}",
                    "topic": topic,
                    "handler": "SwitchLog/on_item",
                    "dead_letter": dlq,
                },
                {
                    "name": f"sb-{run}",
                    "topic": topic,
                    "handler": "BatchOps/on_items",
                    "batch": batch,
                    "dead_letter": dlq,
                },
            ],
        )
    )
    spec = load_bindings(path)
    bind([batch_ops_app.deletable, batch_ops_app.switch_log, batch_ops_app.batch_ops], spec)
    key = f"{run}-k".encode()
    other = f"{run}-other".encode()
    records = [
        Record(key, json.dumps({"seq": 1})),
        Record(key, json.dumps({"seq": 2})),
        Record(other, json.dumps({"seq": 10})),
        Record(key, None),  # offset 3: the tombstone
        Record(key, json.dumps({"seq": 3})),
        Record(None, json.dumps({"seq": 20})),
    ]
    keys = {key.decode(), other.decode(), ""}

    async def states() -> dict[str, dict[str, list[int]]]:
        return {
            "u": await seqs_of_state(restate_admin, "Deletable", "u", keys),
            "b": await seqs_of_state(restate_admin, "Deletable", "b", keys),
            "su": await seqs_of(restate_admin, "SwitchLog", keys),
            "sb": await seqs_of(restate_admin, "BatchOps", keys),
        }

    def done(s: dict[str, dict[str, list[int]]]) -> bool:
        # Every object's last record: objects run concurrently, so the key's seq 3 and the
        # keyless 20 being applied says nothing about `other`'s 10.
        return all(
            3 in v.get(key.decode(), []) and 10 in v.get(other.decode(), []) and 20 in v.get("", [])
            for v in s.values()
        )

    async with restate_app(batch_ops_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        runner = BatchRunner(spec)
        await runner.start()
        try:
            await asyncio.to_thread(produce_records, bootstrap, topic, records)
            s = await wait_until(states, done, timeout=90, describe=repr)
            k, o = key.decode(), other.decode()
            # Deletes: the key's list was cleared by the tombstone, then 3 came.
            assert s["u"] == {k: [3], o: [10], "": [20]}, s["u"]
            assert s["b"] == {k: [3], o: [10], "": [20]}, s["b"]
            # Strict handlers: the tombstone is a dead letter, the key's other records apply.
            assert s["su"] == {k: [1, 2, 3], o: [10], "": [20]}, s["su"]
            assert s["sb"] == {k: [1, 2, 3], o: [10], "": [20]}, s["sb"]
            letters = [
                unwrap_cloudevent(json.loads(r.value or b""))[0]
                for r in await topic_records(bootstrap, dlq, at_least=2)
            ]
            assert sorted(d["binding"] for d in letters) == [f"sb-{run}", f"su-{run}"], letters
            for d in letters:
                assert d["error"]["type"] == "Tombstone", d
                assert "declare KafkaEvent[T | None]" in d["error"]["message"], d
                assert d["source"]["offset"] == 3 and d["key"] == k, d
        finally:
            await runner.stop()
            await drop_cluster(restate_admin, cluster)

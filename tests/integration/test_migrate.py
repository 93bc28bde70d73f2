"""`migrate` on the real engines: a live per-record binding moved from a Restate subscription to
restate-stream's consumer and back while a producer keeps writing, the worker SIGKILLed in the
middle of each hand-over; every record is applied exactly once, in order per key."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.migrate import (
    MigrationError,
    StepOutcome,
    WaitGroupEmpty,
    WriteDelivery,
    migrate,
)
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import drop_cluster, object_state, wait_until
from tests.integration.test_batch import kill_group
from tests.integration.test_consumer_delivery import wait_drained

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
APP = "tests.integration.migrate_app:app"
KEYS = 30
RATE = 150  # records per second, steady through both hand-overs
REWIND = 40  # records per partition the delivery taking over reads again


class SteadyProducer:
    """Writes `{"seq": n}` to keys in turn at RATE records/s on a thread until stopped."""

    def __init__(self, bootstrap: str, topic: str, run: str) -> None:
        self.bootstrap, self.topic, self.run = bootstrap, topic, run
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)

    def key(self, seq: int) -> str:
        return f"{self.run}-k{seq % KEYS}"

    def _produce(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            seqs = range(self.sent, self.sent + RATE // 10)
            records = [Record(self.key(s), json.dumps({"seq": s})) for s in seqs]
            produce_records(self.bootstrap, self.topic, records)
            self.sent += len(records)
            self._stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def expected(self) -> dict[str, list[int]]:
        return _by_key(self.run, range(self.sent))


def write_bindings(
    path: Path, stack: LocalStack, run: str, topic: str, port: int, delivery: str = ""
) -> Path:
    """One per-record binding named after its topic (3 partitions) on cluster c-RUN, served by
    the MigrateLog worker on `port`; by a subscription unless `delivery` says otherwise."""
    delivery_line = f"    delivery: {delivery}\n" if delivery else ""
    path.write_text(f"""\
restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}
kafka:
  clusters:
    c-{run}: {{bootstrap.servers: "{stack.bootstrap_servers}"}}
topics:
  {topic}: {{cluster: c-{run}, partitions: 3}}
worker: {{app: "{APP}", uri: "http://127.0.0.1:{port}"}}
bindings:
  - name: {topic}
    topic: {topic}
    handler: MigrateLog/on_item
{delivery_line}""")
    return path


async def applied(admin: AdminClient, run: str) -> dict[str, list[list[int]]]:
    state: dict[str, list[list[int]]] = await object_state(admin, "MigrateLog", "applied")
    return {k: v for k, v in state.items() if k.startswith(run)}


def total(state: dict[str, list[list[int]]]) -> int:
    return sum(len(v) for v in state.values())


async def grows_by(admin: AdminClient, run: str, count: int, timeout: float = 180) -> None:
    """Until `count` more records than now were applied."""
    before = total(await applied(admin, run))
    await applied_at_least(admin, run, before + count, timeout)


async def applied_at_least(
    admin: AdminClient, run: str, count: int, timeout: float = 180
) -> dict[str, list[list[int]]]:
    """The applied records once there are `count` of them."""
    return await wait_until(
        lambda: applied(admin, run),
        lambda s: total(s) >= count,
        timeout=timeout,
        interval=0.25,
        describe=lambda s: f"{total(s)}/{count} applied",
    )


async def test_migrate_there_and_back_under_load_with_a_sigkill_in_each_hand_over(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = name = f"moving-{run}"
    port = free_ports(1)[0]
    path = write_bindings(tmp_path / "bindings.yaml", stack, run, name, port)
    spec = load_bindings(path)
    group = spec.bindings[0].consumer_group
    workers: list[WorkerProcess] = []

    def start_worker() -> WorkerProcess:
        worker = WorkerProcess(
            APP,
            tmp_path / f"worker-{len(workers)}.log",
            port=port,
            processes=1,
            cwd=REPO,
            bindings=path,
        )
        workers.append(worker)
        worker.start(timeout=60)
        return worker

    kills: list[str] = []
    rewound: list[int] = []

    def faults(outcome: StepOutcome) -> None:
        """Once the old delivery left the group, move its committed offsets REWIND records back:
        the state a delivery leaves that put records into Restate and had not committed them
        (a consumer SIGKILLed between Restate's 202 and its commit; a subscription's auto-commit
        lagging its appends), made certain instead of left to timing. Right after migrate wrote
        the new delivery into the file, SIGKILL the worker: invocations in flight, the consumer
        (when it was the one leaving) killed without its graceful stop."""
        if outcome.status != "done":
            return
        if isinstance(outcome.step, WaitGroupEmpty):
            kafka = TopicAdmin(stack.bootstrap_servers)
            committed = {p.partition: p.committed or 0 for p in kafka.group_lag(group, topic)}
            back = {p: max(0, c - REWIND) for p, c in committed.items()}
            kafka.set_group_offsets(group, topic, back)
            rewound.append(sum(committed.values()) - sum(back.values()))
        if isinstance(outcome.step, WriteDelivery):
            kill_group(workers[-1])
            kills.append(outcome.step.delivery)

    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 3)
    start_worker()
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        with SteadyProducer(stack.bootstrap_servers, topic, run) as producer:
            await grows_by(restate_admin, run, 400)

            # There: the subscription is deleted and leaves the group, then the file says
            # consumer and the worker starts it; the worker is killed mid-way and restarted.
            there = await migrate(spec, name, "consumer", restate_admin, progress=faults)
            assert there.ok, there.outcomes
            assert [s.step.describe().split()[0] for s in there.outcomes] == [
                "delete",
                "wait",
                "write",
            ]
            live = await restate_admin.list_subscriptions()
            assert not [s for s in live if f"c-{run}" in s.source], "subscription left"
            start_worker()
            await grows_by(restate_admin, run, 400)
            with pytest.raises(MigrationError, match="already delivered by the consumer"):
                await migrate(load_bindings(path), name, "consumer", restate_admin)

            # And back: the file says subscription (the killed consumer never commits what
            # Restate accepted from it), the group empties when its session times out, the
            # subscription starts at the committed offsets and re-reads those records.
            back = await migrate(
                load_bindings(path),
                name,
                "subscription",
                restate_admin,
                progress=faults,
            )
            assert back.ok, back.outcomes
            start_worker()
            await grows_by(restate_admin, run, 400)
        assert kills == ["consumer", "subscription"]
        sent = producer.sent
        await applied_at_least(restate_admin, run, sent, timeout=300)
        await wait_drained(stack, group, topic)
        await asyncio.sleep(3)  # a copy applied late would show now
        final = await applied(restate_admin, run)
        subscriptions = [
            s for s in await restate_admin.list_subscriptions() if f"c-{run}" in s.source
        ]
    finally:
        for worker in workers:
            worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")

    assert len(subscriptions) == 1 and subscriptions[0].options["group.id"] == group
    expected = producer.expected()
    assert len(final) == KEYS
    for key, seqs in expected.items():
        got = [seq for seq, _, _ in final[key]]
        assert got == seqs, f"{key}: lost, repeated or reordered records ({_diff(got, seqs)})"
        places = [(p, o) for _, p, o in final[key]]
        assert places == sorted(places) and len(set(places)) == len(places)
    # The copies each hand-over brought were dropped by the worker serving after it.
    dropped = [_dropped(w.log_path) for w in workers]
    print(f"{sent} records; rewound {rewound}; copies dropped, per worker: {dropped}")
    assert len(rewound) == 2 and all(n > 0 for n in rewound)
    assert dropped[1] >= rewound[0] and dropped[2] >= rewound[1]


def _diff(got: list[int], wanted: list[int]) -> dict[str, Any]:
    counts: dict[int, int] = defaultdict(int)
    for s in got:
        counts[s] += 1
    return {
        "twice": sorted(s for s, n in counts.items() if n > 1)[:10],
        "missing": sorted(set(wanted) - set(got))[:10],
    }


def _dropped(log: Path) -> int:
    return log.read_text(errors="replace").count("at or below the high-water")


async def test_a_worker_serving_only_the_subscription_starts_the_consumer_without_a_restart(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """`migrate --to consumer` under a steady stream, the worker that served the binding by
    subscription only (no consumer of its own yet) left running: it starts the consumer at the
    committed offsets itself, and every record is applied once, in order."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = name = f"joining-{run}"
    port = free_ports(1)[0]
    path = write_bindings(tmp_path / "bindings.yaml", stack, run, name, port)
    spec = load_bindings(path)
    worker = WorkerProcess(APP, tmp_path / "worker.log", port=port, cwd=REPO, bindings=path)

    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 3)
    worker.start(timeout=60)
    assert worker.process is not None
    pid = worker.process.pid
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        with SteadyProducer(stack.bootstrap_servers, topic, run) as producer:
            await grows_by(restate_admin, run, 300)
            moved = await migrate(spec, name, "consumer", restate_admin)
            assert moved.ok, moved.outcomes
            live = await restate_admin.list_subscriptions()
            assert not [s for s in live if f"c-{run}" in s.source], "subscription left"
            # Only the consumer can deliver now, in the worker that served the subscription.
            await grows_by(restate_admin, run, 300, timeout=60)
        await applied_at_least(restate_admin, run, producer.sent)
        await wait_drained(stack, spec.bindings[0].consumer_group, topic)
        await asyncio.sleep(2)  # a copy applied late would show now
        final = await applied(restate_admin, run)
        assert worker.process.running() and worker.process.pid == pid, "restarted"
    finally:
        worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    log = worker.log_path.read_text()
    assert f"binding {name}: delivery starting from the committed offsets" in log, log
    for key, seqs in producer.expected().items():
        got = [seq for seq, _, _ in final[key]]
        assert got == seqs, f"{key}: lost, repeated or reordered records ({_diff(got, seqs)})"


def _by_key(run: str, seqs: range) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for s in seqs:
        by_key[f"{run}-k{s % KEYS}"].append(s)
    return by_key

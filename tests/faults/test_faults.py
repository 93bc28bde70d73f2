"""Faults mid-stream on a 3-broker Kafka (replication factor 3, min ISR 2) and a Restate server:
SIGKILL a Kafka broker, or the worker, while records flow through a binding into keyed state
and the handler publishes each record it applies with the durable publisher, then restart what
was killed. Every key's state must be exactly the produced sequence numbers, in order: nothing
lost, nothing applied twice; every applied record must be on the output topic under one event
id (copies with that same id are the publisher's documented window, counted, not failed).
Each case adds a row (records, lost, applied twice, the longest gap in applied progress, the
time from the last record produced to the last applied, publishes lost, published under two
ids, same-id copies) to the table printed at the end (tests/faults/conftest.py).

Opt-in (`-m faults`); .ci/run runs it after the other suites.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors import TopicAdmin
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.stack.kafka_cluster import KafkaCluster
from restate_stream.stack.restate import RestateServer
from restate_stream.testing import drop_cluster, wait_until
from tests.faults.flow import Case, kill_worker

pytestmark = pytest.mark.faults


def busiest_leader(kafka: KafkaCluster, topic: str) -> int:
    """The broker leading most partitions of `topic`: killing it moves the most leaderships."""
    leaders = [
        r.leader for r in TopicAdmin(kafka.bootstrap_servers).partition_replicas(topic).values()
    ]
    return max(set(leaders), key=leaders.count)


async def run_case(
    kafka: KafkaCluster,
    restate: RestateServer,
    admin: AdminClient,
    tmp: Path,
    *,
    name: str,
    records: int,
    batch: str | None,
    kill: str,
    rate: float,
) -> None:
    case = Case(
        kafka,
        (restate.admin_url, restate.ingress_url),
        admin,
        tmp,
        batch=batch,
        # Restate retries a call to a dead worker with backoff up to 1 min by default (500 ms
        # doubling); not a restate-stream default, see README "Running on a cluster".
        retry="{initial_interval: 100ms, max_interval: 1s}",
    )
    worker = case.start_worker()
    try:
        _, report = await apply_bindings(case.spec, admin)
        assert report.ok, report.render()
        # Declared without a replication factor: the cluster's default, 3 replicas in sync.
        replicas = TopicAdmin(kafka.bootstrap_servers).partition_replicas(case.topic)
        assert {len(r.replicas) for r in replicas.values()} == {3}, replicas
        victim = busiest_leader(kafka, case.topic)

        async def fault() -> None:
            nonlocal worker
            if kill == "broker":
                await asyncio.to_thread(kafka.kill, victim)
            else:
                kill_worker(worker)

        async def recover() -> None:
            nonlocal worker
            if kill == "broker":
                # Down until the cluster has noticed (fenced it, moved its leaderships).
                await wait_until(
                    lambda: asyncio.to_thread(kafka.broker_ids),
                    lambda ids: victim not in ids,
                    timeout=60,
                    describe=lambda ids: f"brokers {sorted(ids)}",
                )
                # Started from the loop's thread: a node started from a pool thread gets SIGTERM
                # when that thread exits (PR_SET_PDEATHSIG is per thread).
                kafka.restart(victim, wait=False)
                await asyncio.to_thread(kafka.wait_brokers, {1, 2, 3})
            else:
                worker = case.start_worker()  # the loop's thread, for the same reason

        await case.stream_with_fault(name, records, rate, fault, recover)
        if kill == "broker":
            # The restarted broker caught up: every replica back in sync.
            await asyncio.to_thread(kafka.wait_in_sync, [case.topic, "__consumer_offsets"])
    finally:
        worker.stop()
        await drop_cluster(admin, f"c-{case.run}")


async def test_record_binding_survives_a_broker_sigkill(
    kafka_cluster: KafkaCluster, restate_server: RestateServer, admin: AdminClient, tmp_path: Path
) -> None:
    await run_case(
        kafka_cluster, restate_server, admin, tmp_path,
        name="per-record binding, SIGKILL a Kafka broker", records=6_000,
        rate=250, batch=None, kill="broker",
    )  # fmt: skip


async def test_record_binding_survives_a_worker_sigkill(
    kafka_cluster: KafkaCluster, restate_server: RestateServer, admin: AdminClient, tmp_path: Path
) -> None:
    await run_case(
        kafka_cluster, restate_server, admin, tmp_path,
        name="per-record binding, SIGKILL the worker", records=6_000,
        rate=250, batch=None, kill="worker",
    )  # fmt: skip


async def test_batched_binding_survives_a_broker_sigkill(
    kafka_cluster: KafkaCluster, restate_server: RestateServer, admin: AdminClient, tmp_path: Path
) -> None:
    await run_case(
        kafka_cluster, restate_server, admin, tmp_path,
        name="batched binding (500), SIGKILL a Kafka broker", records=20_000, rate=1_000,
        batch="{max_records: 500}", kill="broker",
    )  # fmt: skip


async def test_batched_binding_survives_a_worker_sigkill(
    kafka_cluster: KafkaCluster, restate_server: RestateServer, admin: AdminClient, tmp_path: Path
) -> None:
    await run_case(
        kafka_cluster, restate_server, admin, tmp_path,
        name="batched binding (500), SIGKILL the worker", records=20_000, rate=1_000,
        batch="{max_records: 500}", kill="worker",
    )  # fmt: skip

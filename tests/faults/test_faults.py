"""Faults mid-stream on a 3-broker Kafka (replication factor 3, min ISR 2) and a Restate server:
SIGKILL a Kafka broker, or the worker, while records flow through a binding into keyed state
and the handler publishes each record it applies with the durable publisher, then restart what
was killed. Every key's state must be exactly the produced sequence numbers, in order: nothing
lost, nothing applied twice; every applied record must be on the output topic under one event
id (copies with that same id are the publisher's documented window, counted, not failed).
Each case adds a row (records, lost, applied twice, the longest gap in applied progress, the
time from the last record produced to the last applied, publishes lost, published under two
ids, same-id copies) to the table printed at the end (tests/faults/conftest.py).

The consumer cases deliver the per-record binding with restate-stream's own consumer (one
ingress invocation per record) and run a window and a table binding beside it through the
same fault (tests/faults/streams.py), which add a row to a second table: windows wrong or
emitted twice, table keys wrong, and how long after its end + grace a quiet key's last window
was emitted (by its durable timer).

Opt-in (`-m faults`); .ci/run runs it after the other suites.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors import TopicAdmin
from restate_stream.control.admin import AdminClient
from restate_stream.stack.kafka_cluster import KafkaCluster
from restate_stream.stack.restate import RestateServer
from restate_stream.testing import wait_until
from tests.faults.flow import RETRY, Case, kill_worker

pytestmark = pytest.mark.faults


def busiest_leader(kafka: KafkaCluster, topic: str) -> int:
    """The broker leading most partitions of `topic`: killing it moves the most leaderships."""
    leaders = [
        r.leader for r in TopicAdmin(kafka.bootstrap_servers).partition_replicas(topic).values()
    ]
    return max(set(leaders), key=leaders.count)


CONSUMER = "consumer per-record + window + table"
CASES = [
    pytest.param("per-record binding, SIGKILL a Kafka broker", 6_000, 250, None, None, "broker",
                 id="record-broker"),
    pytest.param("per-record binding, SIGKILL the worker", 6_000, 250, None, None, "worker",
                 id="record-worker"),
    pytest.param("batched binding (500), SIGKILL a Kafka broker", 20_000, 1_000,
                 "{max_records: 500}", None, "broker", id="batched-broker"),
    pytest.param("batched binding (500), SIGKILL the worker", 20_000, 1_000,
                 "{max_records: 500}", None, "worker", id="batched-worker"),
    # restate-stream's own consumer, one ingress invocation per record, and beside it a
    # window and a table binding (tests/faults/streams.py), delivered the same way.
    pytest.param(f"{CONSUMER}, SIGKILL a Kafka broker", 6_000, 250, None, "consumer", "broker",
                 id="consumer-broker"),
    pytest.param(f"{CONSUMER}, SIGKILL the worker", 6_000, 250, None, "consumer", "worker",
                 id="consumer-worker"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "records", "rate", "batch", "delivery", "kill"), CASES)
async def test_binding_survives_a_sigkill(
    kafka_cluster: KafkaCluster,
    restate_server: RestateServer,
    admin: AdminClient,
    tmp_path: Path,
    name: str,
    records: int,
    rate: float,
    batch: str | None,
    delivery: str | None,
    kill: str,
) -> None:
    kafka = kafka_cluster
    urls = (restate_server.admin_url, restate_server.ingress_url)
    case = Case(
        kafka, urls, admin, tmp_path, batch=batch, retry=RETRY, delivery=delivery,
        streams=delivery == "consumer",
    )  # fmt: skip
    async with case.deployed():
        # Declared without a replication factor: the cluster's default, 3 replicas in sync.
        replicas = TopicAdmin(kafka.bootstrap_servers).partition_replicas(case.topic)
        assert {len(r.replicas) for r in replicas.values()} == {3}, replicas
        victim = busiest_leader(kafka, case.topic)

        async def fault() -> None:
            if kill == "broker":
                await asyncio.to_thread(kafka.kill, victim)
            else:
                assert case.worker is not None
                kill_worker(case.worker)

        async def recover() -> None:
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
                case.start_worker()  # the loop's thread, for the same reason

        await case.stream_with_fault(name, records, rate, fault, recover)
        if kill == "broker":
            # The restarted broker caught up: every replica back in sync.
            await asyncio.to_thread(kafka.wait_in_sync, [case.topic, "__consumer_offsets"])

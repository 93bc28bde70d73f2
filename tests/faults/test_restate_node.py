"""SIGKILL one node of the 3-node Restate cluster (deploy/restate-cluster, replication 2) while
records flow from the 3-broker Kafka through a per-record binding; restart it. The Restate
consumer on the killed node holds its Kafka partitions until the group coordinator gives up on
it: after the subscription's session.timeout.ms, restate-stream's default (10 s, librdkafka's
own is 45 s), which this binding leaves as it is.

Then the same with `delivery: consumer` (restate-stream's consumer in the worker, sending each
record through node 1's ingress), and beside it a window and a table binding
(tests/faults/streams.py): timers set before the kill fire after it. One cluster serves both
cases (slow to start on a loaded machine); the first case restarts the node it killed and
waits until it is healthy again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from restate_stream.control.admin import AdminClient
from restate_stream.stack.kafka_cluster import KafkaCluster
from tests.faults.flow import RETRY, Case
from tests.restate_nodes import RestateNodes, running_cluster

pytestmark = pytest.mark.faults
VICTIM = 3  # not node 1, whose admin API the test talks to


@pytest.fixture(scope="module")
def restate_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestateNodes]:
    with running_cluster(tmp_path_factory.mktemp("restate-nodes")) as nodes:
        yield nodes


CASES = [
    pytest.param("per-record binding, SIGKILL a Restate node", None, id="subscription"),
    pytest.param("consumer per-record + window + table, SIGKILL a Restate node", "consumer",
                 id="consumer"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "delivery"), CASES)
async def test_record_binding_survives_a_restate_node_sigkill(
    kafka_cluster: KafkaCluster,
    restate_nodes: RestateNodes,
    tmp_path: Path,
    name: str,
    delivery: str | None,
) -> None:
    first = restate_nodes.nodes[1]
    async with AdminClient(first.admin_url) as admin:
        urls = (first.admin_url, first.ingress_url)
        case = Case(
            kafka_cluster, urls, admin, tmp_path, batch=None, retry=RETRY, delivery=delivery,
            streams=delivery == "consumer",
        )  # fmt: skip
        async with case.deployed():

            async def fault() -> None:
                await asyncio.to_thread(restate_nodes.kill, VICTIM)

            async def recover() -> None:
                restate_nodes.start_node(VICTIM)  # the loop's thread: PDEATHSIG is per thread
                await asyncio.to_thread(restate_nodes.wait_healthy, [VICTIM])

            await case.stream_with_fault(name, 6_000, 250, fault, recover)

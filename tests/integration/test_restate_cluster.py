"""The 3-node cluster of deploy/restate-cluster, started for real on loopback.

Each node loads deploy/restate-cluster/restate.toml and its node-N.env, with the same
loopback overrides run-local.sh applies (free ports here). A deployment registered through
node 1 is invoked through the ingress of nodes 2 and 3, and the object state it wrote is
read back through the SQL of another node.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import restate

from restate_stream.control.admin import AdminApiError, AdminClient
from restate_stream.testing import object_state, serve_app, wait_until
from tests.restate_nodes import RestateNode as Node
from tests.restate_nodes import RestateNodes, running_cluster

pytestmark = pytest.mark.engines


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RestateNodes]:
    with running_cluster(tmp_path) as nodes:
        yield nodes


counter = restate.VirtualObject("ClusterCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, amount: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + amount
    ctx.set("total", total)
    return total


async def call(node: Node, key: str, amount: int) -> int:
    """Invoke through `node`'s ingress; retried with one idempotency key, so it runs once."""
    url = f"{node.ingress_url}/ClusterCounter/{key}/add"
    headers = {"idempotency-key": uuid.uuid4().hex}

    async def attempt() -> httpx.Response | None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            try:
                return await client.post(url, json=amount, headers=headers)
            except httpx.HTTPError:
                return None

    # Node-local schema caches and partition leaders settle for a moment after registration.
    response = await wait_until(
        attempt,
        lambda r: r is not None and r.status_code == 200,
        timeout=90,  # three nodes on a loaded 2-core machine: leaders settle slowly
        interval=0.5,
        describe=lambda r: "no answer" if r is None else f"{r.status_code} {r.text[:200]}",
    )
    assert response is not None
    result: int = response.json()
    return result


async def state_via(admin: AdminClient, key: str) -> dict[str, Any] | str:
    """ClusterCounter state through `admin`'s SQL, once that node has found the partition."""

    async def probe() -> dict[str, Any] | str:
        try:
            return await object_state(admin, "ClusterCounter", "total", object_key=key)
        except AdminApiError as exc:  # "node lookup for partition N failed" right after start
            return str(exc)

    return await wait_until(probe, lambda s: isinstance(s, dict) and bool(s), timeout=60)


async def test_three_nodes_serve_one_cluster(cluster: RestateNodes) -> None:
    first, second, third = cluster.nodes.values()
    key = f"k-{uuid.uuid4().hex[:8]}"
    try:
        async with (
            AdminClient(first.admin_url) as admin_1,
            AdminClient(third.admin_url) as admin_3,
            serve_app(restate.app([counter]), admin_1) as served,
        ):
            # Registered through node 1, known to node 3: metadata is cluster-wide.
            deployments = await wait_until(
                admin_3.list_deployments,
                lambda ds: any(d.id == served.deployment.id for d in ds),
                timeout=60,
            )
            assert [d.services for d in deployments if d.id == served.deployment.id] == [
                ["ClusterCounter"]
            ]

            assert await call(second, key, 5) == 5
            assert await call(third, key, 7) == 12  # the state node 2's call wrote

            assert await state_via(admin_3, key) == {key: 12}
            async with AdminClient(second.admin_url) as admin_2:
                assert await state_via(admin_2, key) == {key: 12}
    except BaseException as exc:
        exc.add_note(cluster.logs_tail())
        raise

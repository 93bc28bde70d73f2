"""The 3-node cluster of deploy/restate-cluster, started for real on loopback.

Each node loads deploy/restate-cluster/restate.toml and its node-N.env, with the same
loopback overrides run-local.sh applies (free ports here). A deployment registered through
node 1 is invoked through the ingress of nodes 2 and 3, and the object state it wrote is
read back through the SQL of another node.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import restate

from restate_stream._util.ports import LOOPBACK, free_ports
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.control.admin import AdminApiError, AdminClient
from restate_stream.stack.install import install_restate
from restate_stream.stack.offline import offline_launcher
from restate_stream.testing import object_state, serve_app, wait_until
from tests.restate_nodes import CLUSTER_DIR
from tests.restate_nodes import RestateNode as Node

pytestmark = pytest.mark.engines

NODES = (1, 2, 3)


def logs(nodes: list[Node]) -> str:
    return "\n".join(f"--- node {n.index} ({n.log_path}):\n{tail(n.log_path, 25)}" for n in nodes)


def metadata_members(node: Node) -> set[int]:
    try:
        response = httpx.get(f"{node.admin_url}/cluster-health", timeout=1.0)
        members = response.json()["metadata_cluster_health"]["members"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return set()
    return set(members)


def wait_for_cluster(nodes: list[Node], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for node in nodes:
            assert node.process is not None
            if not node.process.running():
                pytest.fail(
                    f"node {node.index} exited with {node.process.returncode}\n{logs(nodes)}"
                )
        if all(n.healthy() for n in nodes) and metadata_members(nodes[0]) == set(NODES):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the cluster was not healthy within {timeout:.0f}s\n{logs(nodes)}")
        time.sleep(0.25)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    binary = install_restate(progress=lambda _: None).binary
    ports = iter(free_ports(3 * len(NODES)))
    nodes = [Node(i, next(ports), next(ports), next(ports), tmp_path / f"node-{i}") for i in NODES]
    addresses = [f"http://{LOOPBACK}:{n.fabric}/" for n in nodes]
    try:
        for node in nodes:
            node.home.mkdir()
            # As run-local.sh: the release check to api.github.com stays on loopback.
            offline, _ = offline_launcher(node.home / "hosts")
            node.process = ManagedProcess(
                f"restate-{node.index}",
                [
                    *(offline or []),
                    str(binary),
                    "--no-logo",
                    "--config-file",
                    str(CLUSTER_DIR / "restate.toml"),
                    "--base-dir",
                    str(node.home / "data"),
                ],
                node.log_path,
                env=node.environment(addresses),
                cwd=node.home,
            )
            node.process.start()  # its own process group
        wait_for_cluster(nodes)
        yield nodes
    finally:
        # All at once: stopped one by one, the last nodes lose their metadata quorum and can
        # hang on shutdown until SIGKILL.
        running = [n.process for n in nodes if n.process is not None]
        with ThreadPoolExecutor(len(nodes)) as pool:
            for process in running:
                pool.submit(process.stop, 15)


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
        timeout=30,
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

    return await wait_until(probe, lambda s: isinstance(s, dict) and bool(s), timeout=15)


async def test_three_nodes_serve_one_cluster(cluster: list[Node]) -> None:
    first, second, third = cluster
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
                timeout=15,
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
        exc.add_note(logs(cluster))
        raise

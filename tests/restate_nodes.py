"""The 3-node Restate cluster of deploy/restate-cluster on free loopback ports, as
run-local.sh starts it (its overrides), for the cluster test and the fault suite: nodes can
be killed and restarted one by one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from restate_stream._util.poll import poll
from restate_stream._util.ports import LOOPBACK, free_ports
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.stack.install import restate_install
from restate_stream.stack.offline import offline_launcher

CLUSTER_DIR = Path(__file__).resolve().parents[1] / "deploy/restate-cluster"


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


@dataclass
class RestateNode:
    index: int
    fabric: int
    admin: int
    ingress: int
    home: Path
    process: ManagedProcess | None = None

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.admin}"

    @property
    def ingress_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ingress}"

    @property
    def log_path(self) -> Path:
        return self.home / "restate.log"

    def environment(self, metadata_addresses: list[str]) -> dict[str, str]:
        return {
            **read_env_file(CLUSTER_DIR / f"node-{self.index}.env"),
            # What run-local.sh overrides to put the three nodes on one loopback interface.
            "RESTATE_BIND_IP": LOOPBACK,
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_BIND_PORT": str(self.fabric),
            "RESTATE_ADMIN__BIND_PORT": str(self.admin),
            "RESTATE_INGRESS__BIND_PORT": str(self.ingress),
            "RESTATE_ADVERTISED_ADDRESS": f"http://{LOOPBACK}:{self.fabric}/",
            "RESTATE_METADATA_CLIENT__ADDRESSES": json.dumps(metadata_addresses),
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
            "RESTATE_DISABLE_TELEMETRY": "true",
            # 3 servers share 2 cores here: fewer partition processors start sooner.
            "RESTATE_DEFAULT_NUM_PARTITIONS": "4",
        }

    def healthy(self) -> bool:
        try:
            admin = httpx.get(f"{self.admin_url}/health", timeout=1.0)
            ingress = httpx.get(f"{self.ingress_url}/restate/health", timeout=1.0)
        except httpx.HTTPError:
            return False
        return admin.status_code == 200 and ingress.status_code == 200

    def metadata_members(self) -> set[int]:
        """The metadata servers this node's cluster view lists; empty if it cannot answer."""
        try:
            response = httpx.get(f"{self.admin_url}/cluster-health", timeout=1.0)
            return set(response.json()["metadata_cluster_health"]["members"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return set()


class RestateNodes:
    def __init__(self, home: Path) -> None:
        ports = iter(free_ports(9))
        self.nodes = {
            i: RestateNode(i, next(ports), next(ports), next(ports), home / f"node-{i}")
            for i in (1, 2, 3)
        }
        self.binary = restate_install().binary

    def start_node(self, i: int) -> None:
        node = self.nodes[i]
        node.home.mkdir(parents=True, exist_ok=True)
        offline, _ = offline_launcher(node.home / "hosts")
        addresses = [f"http://{LOOPBACK}:{n.fabric}/" for n in self.nodes.values()]
        node.process = ManagedProcess(
            f"restate-{i}",
            [
                *(offline or []),
                str(self.binary),
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
        node.process.start()

    def wait_healthy(self, nodes: list[int], timeout: float = 90.0) -> None:
        def ready() -> bool:
            for i in nodes:
                process = self.nodes[i].process
                if process is not None and not process.running():
                    raise RuntimeError(
                        f"restate node {i} exited ({process.returncode}):\n{self.logs_tail()}"
                    )
            return all(self.nodes[i].healthy() for i in nodes)

        poll(ready, what=f"restate nodes {nodes} healthy", timeout=timeout)

    def start(self) -> None:
        """All three, until each is healthy and node 1 lists all three metadata servers."""
        for i in self.nodes:
            self.start_node(i)
        self.wait_healthy(list(self.nodes))
        poll(
            lambda: self.nodes[1].metadata_members() == set(self.nodes),
            what="all three nodes in the metadata quorum",
            timeout=60,
        )

    def kill(self, i: int) -> None:
        process = self.nodes[i].process
        assert process is not None and process.running()
        os.killpg(process.pid, signal.SIGKILL)
        process.stop(5.0)  # reaps

    def stop(self) -> None:
        # All at once: stopped one by one, the last lose their metadata quorum and hang.
        running = [n.process for n in self.nodes.values() if n.process is not None]
        with ThreadPoolExecutor(len(running) or 1) as pool:
            for process in running:
                pool.submit(process.stop, 15)

    def logs_tail(self) -> str:
        return "\n".join(
            f"--- {n.log_path} ---\n{tail(n.log_path, 25)}" for n in self.nodes.values()
        )


@contextlib.contextmanager
def running_cluster(home: Path) -> Iterator[RestateNodes]:
    """The three nodes started and healthy; stopped, all of them, however the block ends."""
    nodes = RestateNodes(home)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()

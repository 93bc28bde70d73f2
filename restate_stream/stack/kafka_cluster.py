"""A multi-broker Apache Kafka (KRaft) from the same Maven jars as the single broker.

Every node is a combined broker + controller with its own process group, loopback ports,
data dir and log; the controller quorum has one voter per node (3 nodes: a majority of 2
keeps it running with one node down). Internal topics and declared topics without a
replication factor get the cluster's defaults: replication factor 3, min.insync.replicas 2.

Used by the fault suite (tests/faults) and as the recipe in deploy/README.md:

    python -m restate_stream.stack.kafka_cluster up|status|kill N|restart N|down [--home DIR]

Pids are recorded per node (`<home>/node-N/pid`, with the process's start time) but never
trusted alone: a recorded pid is signalled only while its start time is the recorded one and
/proc/<pid>/cmdline still names that node's server.properties (restate_stream/_util/pids.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from connectors import KafkaUnavailableError, TopicAdmin
from restate_stream._util.pids import RecordedProcess
from restate_stream._util.poll import PollTimeout, poll
from restate_stream._util.ports import LOOPBACK, accepts_connections, ensure_free, free_ports
from restate_stream._util.process import ManagedProcess, signal_group, stop_group, tail
from restate_stream.stack.install import KafkaInstall, cache_dir, kafka_install, require_java
from restate_stream.stack.kafka import (
    _LOG4J2,
    KafkaBroker,
    KafkaPorts,
    KafkaStartError,
    _cluster_id,
)

STATE_FILE = "cluster.json"


def default_cluster_home() -> Path:
    return cache_dir() / "kafka-cluster"


def node_properties(
    node_id: int,
    data_dir: Path,
    ports: Sequence[KafkaPorts],
    *,
    replication_factor: int,
    min_insync_replicas: int,
) -> str:
    """server.properties of node `node_id` (1-based) of a cluster whose nodes have `ports`."""
    own = ports[node_id - 1]
    voters = ",".join(f"{i}@{LOOPBACK}:{p.controller}" for i, p in enumerate(ports, start=1))
    rf, isr = replication_factor, min_insync_replicas
    return f"""\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{LOOPBACK}:{own.broker},CONTROLLER://{LOOPBACK}:{own.controller}
advertised.listeners=PLAINTEXT://{LOOPBACK}:{own.broker}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir / "data"}
num.partitions=1
auto.create.topics.enable=true
# Topics created without a replication factor (declared topics, dead-letter topics, the
# internal ones) survive the loss of one node and refuse acks=all writes with two down.
default.replication.factor={rf}
min.insync.replicas={isr}
offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
# A killed broker is fenced (its partitions get new leaders) after this much silence; the
# default 9 s is most of the stall a broker loss causes. Lower risks fencing a live broker
# that misses heartbeats on an overloaded host (a GC pause, a starved CPU).
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
# Leadership moves back to the preferred replica soon after a restarted broker catches up.
leader.imbalance.check.interval.seconds=10
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
# 128 MiB by default, on a 512 MiB heap.
log.cleaner.dedupe.buffer.size=4194304
"""


class KafkaNode(KafkaBroker):
    """One node of a KafkaCluster: a KafkaBroker with the cluster's properties and a pid file."""

    def __init__(
        self,
        install: KafkaInstall,
        data_dir: Path,
        node_id: int,
        ports: Sequence[KafkaPorts],
        *,
        replication_factor: int,
        min_insync_replicas: int,
        heap: str,
    ) -> None:
        super().__init__(install, data_dir, ports[node_id - 1], heap)
        self.node_id = node_id
        self.all_ports = list(ports)
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "pid"

    def write_configs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._properties_path.write_text(
            node_properties(
                self.node_id,
                self.data_dir,
                self.all_ports,
                replication_factor=self.replication_factor,
                min_insync_replicas=self.min_insync_replicas,
            )
        )
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "data" / "meta.properties").exists()

    def format_command(self, java: str, cluster_id: str) -> list[str]:
        return self._java_argv(
            java, "kafka.tools.StorageTool", "format", "-c", str(self._properties_path),
            "-t", cluster_id, "-g",
        )  # fmt: skip

    def launch(self, java: str, *, detached: bool) -> None:
        """Start the JVM (no readiness wait: a node alone has no controller quorum)."""
        self.write_configs()
        self.process = ManagedProcess(
            f"kafka-{self.node_id}",
            self._java_argv(java, "kafka.Kafka", str(self._properties_path)),
            self.log_path,
            cwd=self.data_dir,
        )
        self.process.start(detached=detached)
        self.pid_path.write_text(RecordedProcess.of(self.process.pid).to_text())

    def recorded(self) -> RecordedProcess | None:
        try:
            return RecordedProcess.from_text(self.pid_path.read_text())
        except FileNotFoundError:
            return None

    def live_pid(self) -> int | None:
        """The pid of this node's running JVM, from our handle or the pid file, checked
        (recorded pids may have been reused: the start time and command line must match)."""
        if self.process is not None and self.process.running():
            return self.process.pid
        recorded = self.recorded()
        return recorded.pid if recorded and recorded.alive_as(self.runs_as) else None

    def kill(self) -> None:
        """SIGKILL the node's process group (a crash: no shutdown hook runs)."""
        pid = self.live_pid()
        if pid is None:
            raise KafkaStartError(f"Kafka node {self.node_id} is not running (nothing to kill)")
        signal_group(pid, signal.SIGKILL)
        if self.process is not None and self.process.pid == pid:
            self.process.stop(5.0)  # reaps; the group is gone
        else:
            poll(lambda: self.live_pid() is None, what=f"node {self.node_id} to die", timeout=10.0)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.running():
            self.process.stop(timeout)
        elif (pid := self.live_pid()) is not None:
            stop_group(pid, timeout)
        self.pid_path.unlink(missing_ok=True)


@dataclass
class NodeStatus:
    node_id: int
    address: str
    pid: int | None  # the node's JVM, checked against its command line; None: not running
    answers: bool  # its port accepts connections and a client bootstrapped from it got metadata
    in_cluster: bool  # a live node's metadata lists it as an (unfenced) broker
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.pid is not None and self.answers and self.in_cluster

    def line(self) -> str:
        if self.healthy:
            state = f"healthy (pid {self.pid})"
        elif self.pid is None:
            state = "down" + (" (still listed by the cluster)" if self.in_cluster else "")
        else:
            state = f"running (pid {self.pid}), " + (
                "not serving yet" if not self.answers else "not in the cluster's brokers"
            )
        return f"node {self.node_id} ({self.address}): {state}{self.detail}"


class KafkaCluster:
    """`n` combined KRaft nodes on loopback under `home` (node-1 ... node-n)."""

    def __init__(
        self,
        home: Path,
        n: int = 3,
        *,
        ports: Sequence[KafkaPorts] | None = None,
        cache: Path | None = None,
        heap: str = "512m",
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"a Kafka cluster needs at least one node, not {n}")
        self.home = home
        if ports is None:
            free = free_ports(2 * n)
            ports = [KafkaPorts(free[2 * i], free[2 * i + 1]) for i in range(n)]
        if len(ports) != n:
            raise ValueError(f"{len(ports)} port pairs for {n} nodes")
        self.ports = list(ports)
        self.cache = cache
        self.replication_factor = replication_factor or min(3, n)
        self.min_insync_replicas = min_insync_replicas or max(1, min(2, self.replication_factor))
        install = kafka_install(cache)
        self._admins: dict[int, TopicAdmin] = {}
        self.nodes = {
            i: KafkaNode(
                install,
                home / f"node-{i}",
                i,
                self.ports,
                replication_factor=self.replication_factor,
                min_insync_replicas=self.min_insync_replicas,
                heap=heap,
            )
            for i in range(1, n + 1)
        }

    @classmethod
    def attach(cls, home: Path) -> KafkaCluster:
        """The cluster recorded in `home` by an earlier start (nothing is started)."""
        try:
            state = json.loads((home / STATE_FILE).read_text())
        except FileNotFoundError:
            raise KafkaStartError(
                f"no Kafka cluster recorded in {home} (no {STATE_FILE})"
            ) from None
        ports = [KafkaPorts(**p) for p in state["ports"]]
        return cls(
            home,
            len(ports),
            ports=ports,
            cache=Path(state["cache"]) if state.get("cache") else None,
            heap=state["heap"],
            replication_factor=state["replication_factor"],
            min_insync_replicas=state["min_insync_replicas"],
        )

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes.values())

    @property
    def log_paths(self) -> list[Path]:
        return [node.log_path for node in self.nodes.values()]

    def node(self, node_id: int) -> KafkaNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KafkaStartError(
                f"no Kafka node {node_id}: the cluster has nodes {sorted(self.nodes)}"
            ) from None

    def start(self, *, detached: bool = False, timeout: float = 120.0) -> None:
        """Format (once, one cluster id for all) and start every node; wait until each is a
        broker of the cluster. On failure, stop what started."""
        java = require_java()
        running = [i for i, node in self.nodes.items() if node.live_pid() is not None]
        if running:
            raise KafkaStartError(
                f"Kafka nodes {running} under {self.home} already run: stop them first"
            )
        ensure_free(
            {
                f"Kafka node {i} {what}": port
                for i, node in self.nodes.items()
                for what, port in (
                    ("broker", node.ports.broker),
                    ("controller", node.ports.controller),
                )
            }
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_state()
        cluster_id_path = self.home / "cluster-id"
        if not cluster_id_path.exists():
            cluster_id_path.write_text(_cluster_id())
        cluster_id = cluster_id_path.read_text().strip()
        try:
            # Formatting starts a JVM per node: all at once.
            formats = []
            for node in self.nodes.values():
                node.write_configs()
                if not node.formatted:
                    argv = node.format_command(java, cluster_id)
                    formats.append(
                        (
                            node,
                            subprocess.Popen(
                                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                            ),
                        )
                    )
            for node, proc in formats:
                out, _ = proc.communicate()
                if proc.returncode != 0:
                    raise KafkaStartError(
                        f"formatting {node.data_dir / 'data'} failed (exit {proc.returncode}):\n"
                        f"{out.decode(errors='replace')}"
                    )
            for node in self.nodes.values():
                node.launch(java, detached=detached)
            self.wait_brokers(set(self.nodes), timeout)
        except BaseException:
            self.stop()
            raise

    def _write_state(self) -> None:
        state = {
            "ports": [asdict(p) for p in self.ports],
            "cache": str(self.cache) if self.cache else None,
            "heap": next(iter(self.nodes.values())).heap,
            "replication_factor": self.replication_factor,
            "min_insync_replicas": self.min_insync_replicas,
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))

    def broker_ids(self, via: Sequence[int] | None = None, timeout: float = 2.0) -> set[int]:
        """Broker ids in the metadata of the first node of `via` (default: all) that answers:
        the cluster's view, which drops a dead broker once the controller fenced it."""
        last: Exception | None = None
        for i in via or self.nodes:
            node = self.nodes[i]
            if node.live_pid() is None:
                continue
            try:
                return self._admin(i).broker_ids(timeout)
            except KafkaUnavailableError as exc:
                last = exc
        raise KafkaUnavailableError(f"no live Kafka node answered a metadata request ({last})")

    def _admin(self, node_id: int) -> TopicAdmin:
        """A client bootstrapped from that node only, made once its port opens (a client made
        earlier lingers, logging refused connections); dropped when the node is killed."""
        if node_id not in self._admins:
            if not accepts_connections(self.nodes[node_id].ports.broker):
                raise KafkaUnavailableError(f"Kafka node {node_id} does not accept connections")
            self._admins[node_id] = TopicAdmin(
                {
                    "bootstrap.servers": self.nodes[node_id].bootstrap_servers,
                    "reconnect.backoff.max.ms": "500",
                }
            )
        return self._admins[node_id]

    def wait_brokers(self, wanted: set[int], timeout: float = 90.0) -> None:
        """Wait until the cluster's brokers are exactly `wanted`; a node that exits fails."""

        def ready() -> bool:
            for i in wanted:
                node = self.nodes[i]
                if node.process is not None and not node.process.running():
                    raise KafkaStartError(
                        f"Kafka node {i} exited with code {node.process.returncode}; last lines "
                        f"of {node.log_path}:\n{tail(node.log_path)}"
                    )
            # Each node serving (a node killed moments ago is still listed until it is fenced,
            # so the cluster's view alone would pass before a restarted node listens).
            for i in wanted:
                if not accepts_connections(self.nodes[i].ports.broker):
                    return False
            return self.broker_ids(sorted(wanted)) == wanted

        try:
            poll(ready, what="Kafka brokers", timeout=timeout, retry_on=(KafkaUnavailableError,))
        except PollTimeout as exc:
            raise KafkaStartError(
                f"the Kafka cluster under {self.home} did not list brokers {sorted(wanted)} within "
                f"{timeout:.0f}s (last: {exc.last})"
            ) from None

    def live(self) -> set[int]:
        return {i for i, node in self.nodes.items() if node.live_pid() is not None}

    def kill(self, node_id: int) -> None:
        """SIGKILL one node; returns once its process group is gone (the cluster notices
        later, after broker.session.timeout.ms)."""
        self.node(node_id).kill()
        self._admins.pop(node_id, None)

    def restart(
        self, node_id: int, *, detached: bool = False, wait: bool = True, timeout: float = 90.0
    ) -> None:
        """Start a stopped or killed node again; with `wait`, return once the cluster lists it.

        Not detached, the node gets SIGTERM when the thread that started it exits (Linux ties
        PR_SET_PDEATHSIG to the thread): call this from a thread that outlives the node, e.g.
        the event loop's own, with `wait=False` and `wait_brokers` in a worker thread.
        """
        node = self.node(node_id)
        if node.live_pid() is not None:
            raise KafkaStartError(f"Kafka node {node_id} still runs (pid {node.live_pid()})")
        ensure_free({f"Kafka node {node_id} broker": node.ports.broker})
        node.launch(require_java(), detached=detached)
        if wait:
            self.wait_brokers(self.live(), timeout)

    def wait_in_sync(self, topics: Sequence[str], timeout: float = 90.0) -> None:
        """Wait until every partition of `topics` has all its replicas in sync (a restarted
        broker has caught up)."""
        admin = TopicAdmin(self.bootstrap_servers)

        def lagging() -> list[str]:
            out = []
            for topic in topics:
                for p, r in admin.partition_replicas(topic).items():
                    if set(r.isr) != set(r.replicas):
                        out.append(f"{topic}[{p}] isr {r.isr} of {r.replicas}")
            return out

        poll(
            lambda: not lagging(),
            what=f"replicas of {list(topics)} in sync",
            timeout=timeout,
            retry_on=(KafkaUnavailableError,),
        )

    def status(self) -> list[NodeStatus]:
        """Each node: its process (checked command line), its own answer, the cluster's view."""
        views: dict[int, set[int] | str] = {}
        for i, node in self.nodes.items():
            if node.live_pid() is None:
                continue
            try:
                views[i] = self._admin(i).broker_ids(timeout=2.0)
            except KafkaUnavailableError as exc:
                views[i] = str(exc)
        listed: set[int] = set().union(*(v for v in views.values() if isinstance(v, set)))
        result = []
        for i, node in self.nodes.items():
            view = views.get(i)
            result.append(
                NodeStatus(
                    i,
                    node.bootstrap_servers,
                    node.live_pid(),
                    isinstance(view, set),
                    i in listed,
                    f"; {view}" if isinstance(view, str) else "",
                )
            )
        return result

    def stop(self, timeout: float = 30.0) -> None:
        self._admins.clear()
        # All at once: a node stopping alone waits for the others to take its leaderships.
        for node in self.nodes.values():
            pid = node.live_pid()
            if pid is not None:
                signal_group(pid, signal.SIGTERM)
        for node in self.nodes.values():
            node.stop(timeout)

    def logs_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {p} ---\n{tail(p, lines)}" for p in self.log_paths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m restate_stream.stack.kafka_cluster",
        description="A local multi-broker Kafka (KRaft) from the cached jars.",
    )
    parser.add_argument("command", choices=["up", "status", "kill", "restart", "down"])
    parser.add_argument("node", nargs="?", type=int, help="node id, for kill and restart")
    parser.add_argument("--home", type=Path, default=default_cluster_home())
    parser.add_argument("-n", "--nodes", type=int, default=3, help="nodes, for up")
    args = parser.parse_args(argv)
    if args.command in ("kill", "restart") and args.node is None:
        parser.error(f"{args.command} needs a node id")
    try:
        if args.command == "up":
            if (args.home / STATE_FILE).exists():
                cluster = KafkaCluster.attach(args.home)
            else:
                cluster = KafkaCluster(args.home, args.nodes)
            started = time.monotonic()
            cluster.start(detached=True)
            print(
                f"kafka cluster: {len(cluster.nodes)} brokers ready in "
                f"{time.monotonic() - started:.1f}s; bootstrap.servers={cluster.bootstrap_servers}"
            )
            return 0
        cluster = KafkaCluster.attach(args.home)
        if args.command == "kill":
            cluster.kill(args.node)
            print(f"node {args.node}: killed")
        elif args.command == "restart":
            cluster.restart(args.node, detached=True)
            print(f"node {args.node}: back in the cluster")
        elif args.command == "down":
            cluster.stop()
            print(f"kafka cluster under {args.home}: stopped")
        else:
            statuses = cluster.status()
            for s in statuses:
                print(s.line())
            return 0 if all(s.healthy for s in statuses) else 1
    except KafkaStartError as exc:
        print(f"kafka-cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The multi-broker Kafka's configuration and its pid checks, without starting a JVM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from restate_stream._util.poll import poll
from restate_stream.stack.kafka import KafkaPorts, KafkaStartError
from restate_stream.stack.kafka_cluster import KafkaCluster, NodeStatus, node_properties


def properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_node_properties_name_every_voter_and_the_replication_defaults(tmp_path: Path) -> None:
    ports = [KafkaPorts(9001, 9101), KafkaPorts(9002, 9102), KafkaPorts(9003, 9103)]
    props = properties(
        node_properties(2, tmp_path, ports, replication_factor=3, min_insync_replicas=2)
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
        assert props[key] == "2", key
    assert props["log.dirs"] == str(tmp_path / "data")


def test_cluster_defaults_scale_down_for_fewer_nodes(tmp_path: Path) -> None:
    one = KafkaCluster(tmp_path / "one", 1)
    assert (one.replication_factor, one.min_insync_replicas) == (1, 1)
    three = KafkaCluster(tmp_path / "three", 3)
    assert (three.replication_factor, three.min_insync_replicas) == (3, 2)
    assert len(three.bootstrap_servers.split(",")) == 3
    assert len({p for kp in three.ports for p in (kp.broker, kp.controller)}) == 6


def test_a_recorded_pid_is_signalled_only_if_it_is_that_nodes_jvm(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, 2)
    node = cluster.node(1)
    node.data_dir.mkdir(parents=True)
    # A stale pid file naming some other live process (here: this test's own).
    node.pid_path.write_text(str(os.getpid()))
    assert node.live_pid() is None
    with pytest.raises(KafkaStartError, match="not running"):
        cluster.kill(1)

    # A process whose command line is node 1's (the same arguments the JVM gets) is found
    # through the pid file, and only by node 1.
    impostor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            "kafka.Kafka",
            str(node.data_dir / "server.properties"),
        ],
        start_new_session=True,
    )
    try:
        node.pid_path.write_text(str(impostor.pid))
        # Until the child has exec'd, its command line is still this test's.
        poll(lambda: node.live_pid() == impostor.pid, what="the impostor's exec", timeout=10)
        other = cluster.node(2)
        other.data_dir.mkdir(parents=True)
        other.pid_path.write_text(str(impostor.pid))
        assert other.live_pid() is None
        cluster.kill(1)
        assert impostor.wait(10) == -9
        assert node.live_pid() is None
    finally:
        impostor.kill()
        impostor.wait()


def test_unknown_node_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        KafkaStartError, match=r"no Kafka node 4: the cluster has nodes \[1, 2, 3\]"
    ):
        KafkaCluster(tmp_path, 3).node(4)


def test_status_lines_tell_down_from_fenced() -> None:
    up = NodeStatus(1, "127.0.0.1:1", 42, True, True)
    assert up.healthy and up.line() == "node 1 (127.0.0.1:1): healthy (pid 42)"
    dead_but_listed = NodeStatus(2, "127.0.0.1:2", None, False, True)
    assert not dead_but_listed.healthy
    assert "down (still listed by the cluster)" in dead_but_listed.line()
    starting = NodeStatus(3, "127.0.0.1:3", 7, False, False)
    assert "not serving yet" in starting.line()


def test_attach_reads_what_start_recorded(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, 3, heap="256m")
    tmp_path.mkdir(exist_ok=True)
    cluster._write_state()
    again = KafkaCluster.attach(tmp_path)
    assert again.ports == cluster.ports
    assert again.bootstrap_servers == cluster.bootstrap_servers
    assert again.node(1).heap == "256m"
    with pytest.raises(KafkaStartError, match="no Kafka cluster recorded"):
        KafkaCluster.attach(tmp_path / "elsewhere")

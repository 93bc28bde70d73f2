"""Engine-free checks of the stack's pure parts: ports, config text, tool discovery."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from restate_stream._util.ports import free_ports, port_is_free
from restate_stream._util.process import ManagedProcess
from restate_stream.stack import LocalStack, PortInUseError, StackPorts
from restate_stream.stack import install as install_mod
from restate_stream.stack import restate as restate_module
from restate_stream.stack.install import RestateInstall
from restate_stream.stack.kafka import KafkaPorts, _cluster_id, server_properties
from restate_stream.stack.offline import offline_hosts
from restate_stream.stack.restate import RestateServer


def test_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        kafka, controller, ingress, fabric = free_ports(4)
        stack = LocalStack(tmp_path, StackPorts(kafka, controller, ingress, taken, fabric))
        with pytest.raises(PortInUseError) as raised:
            stack.start(install=False, progress=lambda _: None)
    assert raised.value.port == taken
    assert f"port {taken} (Restate admin)" in str(raised.value)
    assert not (tmp_path / "kafka").exists(), "nothing may start when a port is taken"


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port_is_free(p) for p in ports)


def test_server_properties_bind_loopback_and_single_node_replication(tmp_path: Path) -> None:
    text = server_properties(tmp_path, KafkaPorts(19092, 19093))
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key


def test_cluster_id_has_kafka_shape() -> None:
    ids = {_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-") and "=" not in cid


def test_missing_npm_is_reported_with_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no npm, mvn or java
    with pytest.raises(install_mod.StackInstallError, match=r"`npm` is not on PATH.*Install it"):
        install_mod.install_restate(tmp_path / "cache", progress=lambda _: None)
    with pytest.raises(install_mod.StackInstallError, match=r"`java` is not on PATH"):
        install_mod.install_kafka(tmp_path / "cache", progress=lambda _: None)


def test_java_version_parsing(tmp_path: Path) -> None:
    for banner, major in [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
    ]:
        fake = tmp_path / f"java{major}"
        fake.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
        fake.chmod(0o755)
        assert install_mod.java_major_version(str(fake)) == major


def test_cache_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RESTATE_STREAM_CACHE", str(tmp_path / "c"))
    assert install_mod.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RESTATE_STREAM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert install_mod.cache_dir() == tmp_path / "x" / "restate-stream"


def test_offline_hosts_put_the_github_api_on_loopback_first() -> None:
    text = offline_hosts("127.0.0.1 localhost\n10.0.0.1 api.github.com")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    # The first entry for a name wins, so ours come before the system's.
    assert lines[:2] == ["127.0.0.1 api.github.com", "127.0.0.1 uploads.github.com"]
    assert lines[2:] == ["127.0.0.1 localhost", "10.0.0.1 api.github.com"]
    assert text.endswith("\n")


def test_the_local_restate_server_inherits_no_restate_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # restate-server reads RESTATE_* as its configuration: RESTATE_ADMIN set for a bindings
    # file (the food-ordering example's name) made it refuse to start ("expected struct
    # AdminOptions for key ADMIN").
    monkeypatch.setenv("RESTATE_ADMIN", "http://127.0.0.1:9070")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    started: list[dict[str, str]] = []

    class Recorder(ManagedProcess):
        def start(self, *, detached: bool = False) -> None:
            started.append(self.child_environment())

    monkeypatch.setattr(restate_module, "ManagedProcess", Recorder)
    server = RestateServer(
        RestateInstall(tmp_path / "restate-server"), tmp_path, extra_env={"RESTATE_X": "1"}
    )
    monkeypatch.setattr(server, "wait_ready", lambda timeout: None)
    server.start()
    (env,) = started
    assert "RESTATE_ADMIN" not in env
    assert env["KAFKA_BOOTSTRAP"] == "127.0.0.1:9092"  # other variables still pass
    assert env["RESTATE_X"] == "1" and env["RESTATE_DEFAULT_NUM_PARTITIONS"] == "4"


def test_the_local_restate_server_is_bounded_in_memory_and_trims_its_log(tmp_path: Path) -> None:
    # docs/benchmarks.md, "Consumer delivery: restate-server's memory and disk": the server's
    # own defaults (RocksDB 2 GiB, a 250 MiB record cache, a 10-minute trim delay) let a local
    # node hold far more memory, and its log longer, than a laptop's stack needs.
    env = RestateServer(RestateInstall(tmp_path / "restate-server"), tmp_path).environment()
    assert env["RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE"] == "512MiB"
    assert env["RESTATE_BIFROST__RECORD_CACHE_MEMORY_SIZE"] == "64MiB"
    assert env["RESTATE_WORKER__TRIM_DELAY_INTERVAL"] == "0s"
    # A setting the caller passes still wins (the soak measures others this way).
    raised = {"RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "1GiB"}
    server = RestateServer(RestateInstall(tmp_path / "restate-server"), tmp_path, extra_env=raised)
    assert server.environment()["RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE"] == "1GiB"

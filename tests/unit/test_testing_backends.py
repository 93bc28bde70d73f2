"""The pytest plugin's engine backends without engines: the choice of backend, the protocol
both stacks satisfy, the containers' configuration against the local stack's, and the errors a
user sees for a wrong choice or a missing Docker engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from restate_stream._util.ports import free_ports
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.stack.install import restate_install
from restate_stream.stack.kafka import KafkaPorts, server_properties
from restate_stream.stack.restate import RestatePorts, RestateServer
from restate_stream.testing.containers import (
    NO_ENGINE,
    ContainerStack,
    kafka_environment,
    restate_environment,
)
from restate_stream.testing.stacks import BackendChoiceError, EngineStack, choose_backend

pytest_plugins = ("pytester",)


def test_the_option_wins_over_the_environment_and_local_is_the_default() -> None:
    assert choose_backend(None, None) == "local"
    assert choose_backend(None, "") == "local"
    assert choose_backend(None, "Containers") == "containers"
    assert choose_backend("local", "containers") == "local"
    assert choose_backend("containers", None) == "containers"


def test_an_unknown_backend_names_where_it_came_from() -> None:
    with pytest.raises(BackendChoiceError, match=r"\$RESTATE_STREAM_BACKEND='docker'"):
        choose_backend(None, "docker")
    with pytest.raises(BackendChoiceError, match="expected one of local, containers"):
        choose_backend("k8s", None)


def test_both_stacks_are_engine_stacks(tmp_path: Path) -> None:
    ports = StackPorts(*free_ports(5))
    containers = ContainerStack(ports)
    assert isinstance(LocalStack(tmp_path, ports), EngineStack)
    assert isinstance(containers, EngineStack)
    assert containers.bootstrap_servers == f"127.0.0.1:{ports.kafka}"
    assert containers.admin_url == f"http://127.0.0.1:{ports.admin}"
    assert containers.ingress_url == f"http://127.0.0.1:{ports.ingress}"
    assert containers.logs_tail() == "", "nothing started, nothing to show"


def _as_properties(env: dict[str, str]) -> dict[str, str]:
    """KAFKA_* variables as the images read them ('_' -> '.', '__' -> '_', '___' -> '-')."""
    properties = {}
    for name, value in env.items():
        if name.startswith("KAFKA_"):
            key = name.removeprefix("KAFKA_").lower()
            key = key.replace("___", "-").replace("__", "@").replace("_", ".").replace("@", "_")
            properties[key] = value
    return properties


def test_the_kafka_container_is_configured_like_the_local_broker(tmp_path: Path) -> None:
    ports = StackPorts(*free_ports(5))
    env = kafka_environment(ports, "MkU3OEVBNTcwNTJENDM2Qk")
    local = dict(
        line.split("=", 1)
        for line in server_properties(
            tmp_path, KafkaPorts(ports.kafka, ports.kafka_controller)
        ).splitlines()
        if line and not line.startswith("#")
    )
    container = _as_properties(env)
    assert env["CLUSTER_ID"] == "MkU3OEVBNTcwNTJENDM2Qk"
    assert container["node.id"] == "1"
    # Every setting of the local broker but its data dir and buffer size, with the same value.
    for key, value in local.items():
        if key in ("log.dirs", "log.cleaner.dedupe.buffer.size"):
            continue
        assert container.get(key) == value, (
            f"{key}: local {value!r}, container {container.get(key)!r}"
        )


def test_the_restate_container_binds_where_the_local_server_would(tmp_path: Path) -> None:
    ports = StackPorts(*free_ports(5))
    server = RestateServer(
        restate_install(), tmp_path, RestatePorts(ports.ingress, ports.admin, ports.fabric)
    )
    local = server.environment()
    env = restate_environment(ports)
    for key in (
        "RESTATE_BIND_IP",
        "RESTATE_LISTEN_MODE",
        "RESTATE_INGRESS__BIND_PORT",
        "RESTATE_ADMIN__BIND_PORT",
        "RESTATE_BIND_PORT",
        "RESTATE_DISABLE_TELEMETRY",
    ):
        assert env[key] == local[key], key


def test_a_wrong_backend_in_the_environment_stops_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.setenv("RESTATE_STREAM_BACKEND", "docker")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*RESTATE_STREAM_BACKEND='docker' names no engine backend*"])


def test_the_header_names_the_backend(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.setenv("RESTATE_STREAM_BACKEND", "containers")
    result = pytester.runpytest_subprocess("--restate-stream-backend=local")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["restate-stream engines: local"])


def test_containers_without_a_docker_engine_fail_with_how_to_get_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytester.makepyfile(
        "def test_uses_the_engines(restate_stream_stack):\n    assert False, 'never reached'\n"
    )
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    result = pytester.runpytest_subprocess("--restate-stream-backend=containers")
    result.assert_outcomes(errors=1)
    assert " ".join(NO_ENGINE.split()) in " ".join(result.stdout.str().split())
    result.stdout.no_fnmatch_line("*never reached*")

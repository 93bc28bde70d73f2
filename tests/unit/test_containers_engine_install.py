"""DockerEngine.install on a fresh machine: apt-get installs every missing tool the container
suite needs (docker.io, docker-compose and debootstrap for the image bases), nothing present."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from restate_stream.containers import engine as engine_module
from restate_stream.containers.engine import DockerEngine, EngineError

# Debian package -> the command it puts on PATH.
TOOLS = {"docker.io": "dockerd", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}


class FakeApt:
    """apt-get as a recorder: an install puts the named packages' tools on the fake PATH."""

    def __init__(self, present: set[str]) -> None:
        self.present = set(present)
        self.calls: list[list[str]] = []

    def which(self, tool: str) -> str | None:
        return f"/usr/bin/{tool}" if tool in self.present else None

    def run(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if argv[:2] == ["apt-get", "install"]:
            self.present |= {TOOLS[p] for p in argv if p in TOOLS}
        return subprocess.CompletedProcess(argv, 0, "", "")


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    fake = FakeApt(present={"apt-get", "dockerd", "docker-compose"})
    monkeypatch.setattr(engine_module.shutil, "which", fake.which)
    monkeypatch.setattr(engine_module.subprocess, "run", fake.run)
    monkeypatch.setattr(engine_module.os, "geteuid", lambda: 0)
    return fake


def test_install_adds_debootstrap_when_only_docker_is_present(apt: FakeApt, tmp_path: Path) -> None:
    assert DockerEngine(tmp_path).install(progress=lambda _: None) == "/usr/bin/dockerd"
    installs = [c for c in apt.calls if c[:2] == ["apt-get", "install"]]
    assert installs == [["apt-get", "install", "-y", "-qq", "debootstrap"]]


def test_install_on_a_fresh_machine_installs_all_three(apt: FakeApt, tmp_path: Path) -> None:
    apt.present -= {"dockerd", "docker-compose"}
    DockerEngine(tmp_path).install(progress=lambda _: None)
    (install,) = [c for c in apt.calls if c[:2] == ["apt-get", "install"]]
    assert set(install[4:]) == {"docker.io", "docker-compose", "debootstrap"}


def test_install_with_everything_present_runs_nothing(apt: FakeApt, tmp_path: Path) -> None:
    apt.present |= {"debootstrap"}
    DockerEngine(tmp_path).install(progress=lambda _: None)
    assert apt.calls == []


def test_install_without_root_names_the_command(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module.os, "geteuid", lambda: 1000)
    with pytest.raises(EngineError, match=r"sudo apt-get install -y debootstrap"):
        DockerEngine(tmp_path).install(progress=lambda _: None)

"""A Docker engine of the project's own: dockerd on a socket and data dir under the engine cache.

For machines (CI here) that have no Docker engine running: `scripts/docker-engine start`
installs Debian's docker.io, starts dockerd with the vfs storage driver, no bridge and no
iptables rules (containers use host networking), in its own process group, and waits until it
answers. Its socket is not /var/run/docker.sock, so it never collides with a system engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from restate_stream._util.poll import PollTimeout, poll
from restate_stream._util.process import stop_group, tail
from restate_stream._util.trusted_paths import require_own_entry, require_trusted_dir
from restate_stream.errors import LocalStackError
from restate_stream.stack.install import cache_dir

Progress = Callable[[str], None]
SYSTEM_SOCKET = "unix:///var/run/docker.sock"
# A unix socket path longer than this does not fit in sockaddr_un (containerd's go under exec-root).
_MAX_SOCKET_PATH = 100
# Debian package -> the command it brings; `install` adds whichever is missing.
_ENGINE_PACKAGES = (
    ("docker.io", "dockerd"),
    ("docker-compose", "docker-compose"),
    ("debootstrap", "debootstrap"),
)


class EngineError(LocalStackError, RuntimeError):
    pass


def docker_binary() -> str:
    found = shutil.which("docker")
    if found is None:
        raise EngineError(
            "`docker` is not on PATH: install a Docker client, e.g. `apt-get install docker.io` "
            "(or run `scripts/docker-engine start`, which installs it on Debian)"
        )
    return found


@dataclass(frozen=True)
class DockerCli:
    """The docker client pointed at one engine (DOCKER_HOST), for builds, runs and compose."""

    host: str
    binary: str = field(default_factory=docker_binary)

    def env(self) -> dict[str, str]:
        # The legacy builder: it uses local images for FROM and needs no buildx plugin.
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 120.0,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise EngineError(
                f"`docker {' '.join(args)}` on {self.host} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def answers(self, timeout: float = 10.0) -> bool:
        try:
            result = self.run(
                ["version", "--format", "{{.Server.Version}}"], check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0 and bool(result.stdout.strip())


@dataclass(frozen=True)
class DockerEngine:
    """dockerd with everything under `root` (by default the engine cache dir)."""

    root: Path = field(default_factory=cache_dir)

    @property
    def data_root(self) -> Path:
        return self.root / "docker"

    @property
    def exec_root(self) -> Path:
        return self.root / "docker-run"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "docker.pid"

    @property
    def log(self) -> Path:
        return self.root / "docker.log"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def cli(self) -> DockerCli:
        return DockerCli(self.host)

    def argv(self, dockerd: str) -> list[str]:
        return [
            dockerd,
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.host}",
            # vfs: works on any filesystem (no overlay mounts in nested sandboxes).
            "--storage-driver=vfs",
            # Host networking only: no docker0 bridge, no NAT or forwarding rules on the host.
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            # Its own namespace when it shares a system containerd.
            "--containerd-namespace=restate-stream",
            "--containerd-plugins-namespace=restate-stream-plugins",
        ]

    def install(self, progress: Progress = print) -> str:
        """dockerd from Debian's docker.io (with containerd and runc), docker-compose, and
        debootstrap (the local images' Debian bases are built with it)."""
        missing = [pkg for pkg, tool in _ENGINE_PACKAGES if shutil.which(tool) is None]
        if not missing:
            return shutil.which("dockerd") or "dockerd"
        names = " ".join(missing)
        if os.geteuid() != 0:
            raise EngineError(
                f"{names} missing and installing needs root: `sudo apt-get install -y {names}`"
            )
        if shutil.which("apt-get") is None:
            raise EngineError(
                f"{names} missing and this is not a Debian-like system: install a Docker "
                "engine and point DOCKER_HOST at it"
            )
        progress(f"docker-engine: installing {names} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", *missing],
        ):
            result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise EngineError(
                    f"`{' '.join(argv)}` failed (exit {result.returncode}):\n"
                    f"{(result.stderr or result.stdout)[-2000:]}"
                )
        still = [tool for _, tool in _ENGINE_PACKAGES if shutil.which(tool) is None]
        if still:
            raise EngineError(f"apt-get installed {names} but {', '.join(still)} not on PATH")
        return shutil.which("dockerd") or "dockerd"

    def check_paths(self) -> None:
        """dockerd runs as root on these paths: refuse any another user could swap (a
        symlinked log would have root write where it points; a data or exec root of theirs
        would have root run what they put there)."""
        require_trusted_dir(self.root, "engine directory")
        for path in (self.data_root, self.exec_root):
            require_trusted_dir(path, "engine directory")
        for path in (self.log, self.pidfile, self.socket):
            require_own_entry(path, "engine file")

    def running_pid(self) -> int | None:
        """The recorded dockerd pid, if that process is still our dockerd (not a reused pid)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        words = [w.decode(errors="replace") for w in cmdline]
        ours = bool(words) and Path(words[0]).name == "dockerd" and f"--host={self.host}" in words
        return pid if ours else None

    def start(self, timeout: float = 90.0, progress: Progress = print) -> None:
        self.check_paths()
        cli_ok = self.running_pid() is not None and self.cli().answers()
        if cli_ok:
            progress(f"docker-engine: already running (pid {self.running_pid()}) at {self.host}")
            return
        dockerd = self.install(progress)
        if len(str(self.exec_root)) + len("/containerd/containerd.sock.ttrpc") > _MAX_SOCKET_PATH:
            raise EngineError(
                f"{self.exec_root} is too long for the engine's unix sockets: set "
                "RESTATE_STREAM_CACHE to a shorter directory"
            )
        if os.geteuid() != 0:
            raise EngineError(
                "dockerd runs as root here: run `scripts/docker-engine start` as root"
            )
        for path in (self.data_root, self.exec_root):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.check_paths()  # what mkdir created, and what may have appeared meanwhile
        self.socket.unlink(missing_ok=True)  # a stale socket from a killed engine
        self.pidfile.unlink(missing_ok=True)
        progress(f"docker-engine: starting dockerd at {self.host} (log {self.log})")
        with self.log.open("ab") as log:
            # Its own session: the engine outlives this command (`stop` ends it).
            process = subprocess.Popen(
                self.argv(dockerd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # dockerd writes --pidfile itself (and refuses to start when it names a live process).

        def up() -> bool:
            if process.poll() is not None:
                raise EngineError(
                    f"dockerd exited with code {process.returncode} while starting; last lines "
                    f"of {self.log}:\n{tail(self.log)}"
                )
            return self.cli().answers(timeout=5.0)

        try:
            poll(up, what="dockerd to answer", timeout=timeout)
        except PollTimeout:
            raise EngineError(
                f"dockerd (pid {process.pid}) did not answer at {self.host} within {timeout:.0f}s;"
                f" last lines of {self.log}:\n{tail(self.log)}"
            ) from None
        progress(f"docker-engine: running (pid {process.pid}); export DOCKER_HOST={self.host}")

    def stop(self, timeout: float = 60.0, progress: Progress = print) -> None:
        self.check_paths()  # the pid file we would signal is read from there
        pid = self.running_pid()
        if pid is None:
            progress(f"docker-engine: not running ({self.pidfile} names no dockerd of ours)")
            return
        progress(f"docker-engine: stopping dockerd (pid {pid}) and its containers")
        # dockerd stops its containers (15 s grace each) and its containerd before it exits.
        stop_group(pid, timeout)
        self.pidfile.unlink(missing_ok=True)

    def status(self) -> str:
        pid = self.running_pid()
        if pid is None:
            return f"not running (no dockerd of ours recorded in {self.pidfile})"
        answering = "answering" if self.cli().answers() else "NOT answering"
        return f"running, pid {pid}, {answering} at {self.host}"


def reachable_docker_host(candidates: Sequence[str] | None = None) -> str | None:
    """The first engine that answers: $DOCKER_HOST if set, else ours, else the system one."""
    if candidates is None:
        explicit = os.environ.get("DOCKER_HOST")
        candidates = [explicit] if explicit else [DockerEngine().host, SYSTEM_SOCKET]
    try:
        binary = docker_binary()
    except EngineError:
        return None
    for host in candidates:
        if DockerCli(host, binary).answers():
            return host
    return None

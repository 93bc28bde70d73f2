"""One Restate server (single node) run from the npm package's binary."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from restate_stream._util.pids import has_option
from restate_stream._util.poll import PollTimeout, poll
from restate_stream._util.ports import LOOPBACK
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.errors import LocalStackError
from restate_stream.stack.install import RestateInstall
from restate_stream.stack.offline import offline_launcher

log = logging.getLogger(__name__)


class RestateStartError(LocalStackError, RuntimeError):
    pass


@dataclass(frozen=True)
class RestatePorts:
    ingress: int = 8080
    admin: int = 9070
    fabric: int = 5122


LOCAL_PARTITIONS = 4  # docs/local-engines.md; production settings stay the user's

# What bounds a local node's memory and disk under sustained delivery (docs/benchmarks.md,
# "Consumer delivery: restate-server's memory and disk"; benchmarks/idempotency_soak.py).
# Defaults are the server's for a node of its own: RocksDB 2 GiB, a 250 MiB record cache.
# Measured on 2 cores, the caps cost no throughput (benchmarks/restate_config.py), and the
# smaller memtables flush sooner, which is what lets the log be trimmed: a single node without
# a snapshot repository trims each partition's log up to what its store has flushed. The
# trim delay exists to let a snapshot reach other regions; a lone node has none to wait for.
LOCAL_BOUNDS = {
    "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "512MiB",
    "RESTATE_BIFROST__RECORD_CACHE_MEMORY_SIZE": "64MiB",
    "RESTATE_WORKER__TRIM_DELAY_INTERVAL": "0s",
}


class RestateServer:
    def __init__(
        self,
        install: RestateInstall,
        data_dir: Path,
        ports: RestatePorts | None = None,
        extra_env: dict[str, str] | None = None,
        launch_prefix: Sequence[str] = (),
    ) -> None:
        self.install = install
        self.data_dir = data_dir
        self.ports = ports or RestatePorts()
        # More RESTATE_* settings, e.g. the request-signing key.
        self.extra_env = dict(extra_env or {})
        self.log_path = data_dir / "restate.log"
        self.temp_dir = data_dir / "tmp"
        # Run ahead of everything else, e.g. a tracer in tests.
        self.launch_prefix = list(launch_prefix)
        # Set by command(): whether the server's GitHub release check is kept on loopback,
        # and if not, why not.
        self.sandboxed = False
        self.online_reason: str | None = None
        self.process: ManagedProcess | None = None

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.admin}"

    @property
    def ingress_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.ingress}"

    def environment(self) -> dict[str, str]:
        return {
            "RESTATE_BIND_IP": LOOPBACK,
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_INGRESS__BIND_PORT": str(self.ports.ingress),
            "RESTATE_ADMIN__BIND_PORT": str(self.ports.admin),
            "RESTATE_BIND_PORT": str(self.ports.fabric),
            # No Scarf usage ping (DO_NOT_TRACK is the server's other name for it). The
            # GitHub release check has no switch: see stack/offline.py.
            "RESTATE_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
            # One line per event, so a warning can be followed (and grepped) whole.
            "RESTATE_LOG_FORMAT": "compact",
            # A single local node on a small machine: 4 partitions instead of the server's 24
            # cost restate-server ~15% less CPU per record and ~25% less memory
            # (benchmarks/restate_config.py). Applied when a data dir is first provisioned.
            "RESTATE_DEFAULT_NUM_PARTITIONS": str(LOCAL_PARTITIONS),
            **LOCAL_BOUNDS,
            # Each partition's invoker makes a temporary directory (`invoker-<id>`) that the
            # server leaves behind when it stops: under the stack's own directory, not the
            # system's. (Not the invoker's `tmp-dir` setting: every partition would share that
            # one directory, and each clears it when it starts.)
            "TMPDIR": str(self.temp_dir),
            # The release check's refused connection to 127.0.0.1:443 is expected in the
            # sandbox: not an ERROR worth a line on every start.
            **({"RESTATE_LOG_FILTER": "warn,restate=info,octocrab=off"} if self.sandboxed else {}),
            **self.extra_env,
        }

    def command(self) -> list[str]:
        """The argv that starts the server: in a namespace whose /etc/hosts keeps the server's
        GitHub release check on loopback, where this machine allows one (stack/offline.py)."""
        prefix, self.online_reason = offline_launcher(self.data_dir / "hosts")
        self.sandboxed = prefix is not None
        if prefix is None:
            log.warning(
                "restate-server will try to reach api.github.com:443 (its release check has no "
                "switch) because it cannot run with a private /etc/hosts here: %s",
                self.online_reason,
            )
        return [
            *self.launch_prefix,
            *(prefix or []),
            str(self.install.binary),
            "--no-logo",
            "--node-name",
            "restate-stream-local",
            "--base-dir",
            str(self.data_dir / "data"),
        ]

    def runs_as(self, argv: Sequence[str]) -> bool:
        """`argv` is this server (unshare and sh exec it, so the command line is its own). The
        binary by name, not path: the cache it ran from may be another than this shell's
        ($RESTATE_STREAM_CACHE, $XDG_CACHE_HOME); its --base-dir names this home."""
        base_dir = str(self.data_dir / "data")
        binary = self.install.binary.name
        return any(Path(a).name == binary for a in argv) and has_option(
            argv, "--base-dir", base_dir
        )

    def start(self, *, detached: bool = False, timeout: float = 60.0) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        argv = self.command()  # before environment(): it depends on the sandbox
        self.process = ManagedProcess(
            "restate",
            argv,
            self.log_path,
            env=self.environment(),
            cwd=self.data_dir,
            # restate-server reads every RESTATE_* variable as configuration: one the user set
            # for something else (the examples' ${RESTATE_ADMIN}) would stop it starting.
            drop_inherited=("RESTATE_",),
        )
        self.process.start(detached=detached)
        self.wait_ready(timeout)

    def healthy(self) -> bool:
        try:
            admin = httpx.get(f"{self.admin_url}/health", timeout=1.0)
            ingress = httpx.get(f"{self.ingress_url}/restate/health", timeout=1.0)
        except httpx.HTTPError:
            return False
        return admin.status_code == 200 and ingress.status_code == 200

    def wait_ready(self, timeout: float) -> None:
        def healthy_or_exited() -> bool:
            if self.healthy():
                return True
            if self.process is not None and not self.process.running():
                raise RestateStartError(
                    f"the Restate server exited with code {self.process.returncode} while "
                    f"starting; last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            return False

        try:
            poll(healthy_or_exited, what="Restate health", timeout=timeout)
        except PollTimeout:
            raise RestateStartError(
                f"the Restate server (admin {self.admin_url}) was not healthy within "
                f"{timeout:.0f}s; last lines of {self.log_path}:\n{tail(self.log_path)}"
            ) from None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)

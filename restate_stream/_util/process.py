"""A child process in its own process group, stopped group and all.

Engines (JVMs, the Restate server) run in a process group of their own so a stop
reaches everything they spawned. When the owning Python process dies first, the
kernel sends the child SIGTERM (PR_SET_PDEATHSIG), so tests never leave orphans;
`stack up` starts engines detached instead and records their pids for `stack down`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from restate_stream._util.poll import PollTimeout, poll
from restate_stream.errors import LocalStackError

_PR_SET_PDEATHSIG = 1


# Resolved now, not in the child: after fork only async-signal-safe work is safe (no dlopen).
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send this process `sig` when the thread that started it ends
    (PR_SET_PDEATHSIG); exit now if `parent` is already gone."""
    _prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _die_with_parent(parent: int) -> Callable[[], None]:
    def in_child() -> None:  # between fork and exec
        die_with_parent(parent)

    return in_child


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        drop_inherited: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        # Prefixes of this process's variables the child must not inherit (`env` still sets them).
        self.drop_inherited = tuple(drop_inherited)
        self._popen: subprocess.Popen[bytes] | None = None

    def child_environment(self) -> dict[str, str]:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(self.drop_inherited)
        }
        return {**inherited, **(self.env or {})}

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._popen.pid

    def start(self, *, detached: bool = False) -> None:
        """Start in a new session. detached=False ties the child's life to this process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.child_environment(),
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=None if detached else _die_with_parent(os.getpid()),
            )

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the group, then SIGKILL to the group after `timeout` seconds."""
        if self._popen is None:
            return
        stop_group(self._popen.pid, timeout, reap=self._reap)

    def _reap(self, timeout: float) -> bool:
        assert self._popen is not None
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class SignalRefusedError(LocalStackError, PermissionError):
    """The kernel refused to signal a process group (another user's)."""


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the group; False if it is gone, SignalRefusedError if not ours to signal."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        raise SignalRefusedError(
            f"not permitted to send {sig.name} to process group {pgid}: it belongs to another "
            "user (run as that user, or check that the recorded pid is really ours)"
        ) from None
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    try:
        poll(lambda: not _group_alive(pgid), what=f"process group {pgid} to exit", timeout=timeout)
    except PollTimeout:
        return False
    return True


def stop_group(
    pgid: int, timeout: float = 20.0, reap: Callable[[float], bool] | None = None
) -> None:
    """Stop the process group led by `pgid`: SIGTERM, then SIGKILL if it lingers.

    `reap` waits for our own child (so it does not stay a zombie); detached groups
    started by an earlier `stack up` have no such handle and are polled instead.
    SignalRefusedError when the group is another user's.
    """
    if not signal_group(pgid, signal.SIGTERM):
        return
    leader_gone = reap(timeout) if reap is not None else _wait_group_gone(pgid, timeout)
    if leader_gone and _wait_group_gone(pgid, 2.0):
        return
    if not signal_group(pgid, signal.SIGKILL):
        return
    if reap is not None:
        reap(5.0)
    _wait_group_gone(pgid, 5.0)

"""Fresh virtual environments with what a user installs, and the commands run in them.

Nothing of the development checkout leaks in: the venv is made from the base interpreter,
dependencies come from the package index (pip's own cache where it has one), and commands
run with the venv's bin first on PATH and no PYTHONPATH, as a user's shell runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600  # a cold index fetch of every dependency on a shared 2-core machine


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        # The dev venv's bin must not answer for `restate-stream` or `pytest`.
        path = [
            p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != Path(sys.prefix) / "bin"
        ]
        env["PATH"] = os.pathsep.join([str(self.bin), *path])
        env["VIRTUAL_ENV"] = str(self.path)
        env.pop("RESTATE_STREAM_BACKEND", None)
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """`args` as typed in a shell where this venv is active."""
        return subprocess.run(
            list(args),
            cwd=cwd,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


MakeVenv = Callable[..., Venv]  # the make_venv fixture: make_venv(*requirements) -> Venv


def shown(done: subprocess.CompletedProcess[str]) -> str:
    """A finished command for a failure message: what ran, its status and its output."""
    return (
        f"$ {' '.join(map(str, done.args))}\nexit {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )

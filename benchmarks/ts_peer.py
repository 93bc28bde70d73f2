"""The benchmarks' TypeScript peer: `benchmarks/ts_peer/counter.mjs`, the keyed counter of
`benchmarks/apps.py` on Restate's TypeScript SDK (npm `@restatedev/restate-sdk`), served by
Node beside the Python worker so one run can drain the same topic through both.

The npm package installs into the per-user cache (`<cache>/bench-ts-peer`), once; Node runs
in its own process group on a loopback port and is stopped, group and all, by `stop()`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from restate_stream._util.ports import free_ports, wait_until_listening
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.stack.install import cache_dir

SOURCE = Path(__file__).resolve().parent / "ts_peer"
SERVICE = "TsBenchCounter"


def install() -> Path:
    """The peer's directory with its node_modules (npm install by package name, once)."""
    target = cache_dir() / "bench-ts-peer"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "counter.mjs"):
        shutil.copyfile(SOURCE / name, target / name)
    wanted = json.loads((SOURCE / "package.json").read_text())["dependencies"]
    installed = target / "node_modules" / "@restatedev" / "restate-sdk" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != next(
        iter(wanted.values())
    ):
        if shutil.which("npm") is None:
            raise SystemExit("the TypeScript peer needs npm (Node.js 18+) on PATH")
        print(f"installing the TypeScript peer's SDK into {target} (npm)", flush=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            check=True,
        )
    return target


class TsPeer:
    def __init__(self, log_path: Path) -> None:
        self.directory = install()
        self.port = free_ports(1)[0]
        self.process = ManagedProcess(
            "ts-peer",
            ["node", "counter.mjs", str(self.port)],
            log_path,
            cwd=self.directory,
        )

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process.start()
        if not wait_until_listening(self.port, timeout=30, alive=self.process.running):
            self.process.stop()
            raise SystemExit(f"the TypeScript peer did not listen:\n{tail(self.process.log_path)}")

    def stop(self) -> None:
        self.process.stop()

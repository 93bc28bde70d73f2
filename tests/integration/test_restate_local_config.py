"""The local node's settings are ones restate-server reads: a misspelt RESTATE_* name would be
ignored without a word, and the node would run on the server's defaults."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

from restate_stream.stack.install import install_restate
from restate_stream.stack.restate import LOCAL_PARTITIONS, RestateServer


def test_restate_server_reads_the_local_stacks_memory_and_trim_settings(tmp_path: Path) -> None:
    install = install_restate(progress=lambda _: None)  # present: nothing is downloaded
    server = RestateServer(install, tmp_path)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
    dumped = subprocess.run(
        [str(install.binary), "--dump-config"],
        env={**inherited, **server.environment()},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    config = tomllib.loads(dumped.stdout)
    assert config["default-num-partitions"] == LOCAL_PARTITIONS
    assert config["rocksdb-total-memory-size"] == "512.0 MiB"  # the server's default: 2.0 GiB
    assert config["bifrost"]["record-cache-memory-size"] == "64.0 MiB"  # default 250.0 MiB
    # A zero delay is left out of the dump; the server's default prints as "10m".
    assert "trim-delay-interval" not in config["worker"], config["worker"]

"""Test inputs: a bindings file from plain data, and the CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

CLI = [sys.executable, "-m", "restate_stream.cli"]


def bindings_yaml(
    *,
    clusters: Mapping[str, str | Mapping[str, str]],
    bindings: Sequence[Mapping[str, Any]] = (),
    topics: Mapping[str, Mapping[str, Any]] | None = None,
    worker: Mapping[str, Any] | None = None,
    admin_url: str | None = None,
    ingress_url: str | None = None,
) -> str:
    """bindings.yaml text. A cluster is its bootstrap servers, or all its client properties.

    bindings_yaml(clusters={"local": bootstrap},
                  topics={"orders": {"cluster": "local", "partitions": 2}},
                  bindings=[{"name": "orders", "topic": "orders", "handler": "S/h"}])
    """
    doc: dict[str, Any] = {}
    restate = {"admin_url": admin_url, "ingress_url": ingress_url}
    if any(restate.values()):
        doc["restate"] = {k: v for k, v in restate.items() if v}
    doc["kafka"] = {
        "clusters": {
            name: {"bootstrap.servers": props} if isinstance(props, str) else dict(props)
            for name, props in clusters.items()
        }
    }
    if topics:
        doc["topics"] = {name: dict(spec) for name, spec in topics.items()}
    if worker is not None:
        doc["worker"] = dict(worker)
    if bindings:
        doc["bindings"] = [_plain(b) for b in bindings]
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def run_cli(
    *args: str,
    timeout: float = 120,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`restate-stream ARGS...` in a subprocess; output captured as text, killed at `timeout`."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env} if env is not None else None,
        input=input,
    )

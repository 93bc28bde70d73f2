"""`restate-stream dev` in the project `restate-stream init` wrote, with nothing edited.

The file's `${VAR:-default}` addresses are pointed at free ports through the environment
(the defaults are the stack's own ports, which another run may hold); dev starts the engines
there, serves app.py and applies bindings.yaml. The sample orders then reach the object, the
negative one the dead-letter topic, and Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from restate_stream._util.ports import free_ports, port_is_free
from restate_stream.stack import StackPorts
from restate_stream.testing import run_cli
from tests.integration.dev_process import port_flags, running_dev


def until(read: Callable[[], str], done: Callable[[str], bool], timeout: float = 60) -> str:
    """What `read` returns once `done` accepts it, or its last answer at the timeout."""
    deadline = time.monotonic() + timeout
    while not done(answer := read()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return answer


def test_dev_runs_the_new_project_as_written(tmp_path: Path) -> None:
    made = run_cli("init", str(tmp_path / "shop"))
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    ports = StackPorts.free()
    worker_port = free_ports(1)[0]
    env = {
        "ADMIN_URL": f"http://127.0.0.1:{ports.admin}",
        "INGRESS_URL": f"http://127.0.0.1:{ports.ingress}",
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
        "WORKER_URI": f"http://127.0.0.1:{worker_port}",
    }
    args = ["--home", str(tmp_path / "home"), *port_flags(ports, "kafka_controller", "fabric")]
    with running_dev(args, cwd=project, env=env) as dev:
        published = run_cli("publish", "orders", "--records", "orders.jsonl", cwd=project, env=env)
        assert published.returncode == 0, published.stderr
        total = until(
            lambda: (
                subprocess.run(
                    [sys.executable, "show_total.py", "alice"],
                    cwd=project,
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                    timeout=60,
                ).stdout
            ),
            lambda out: out == "alice: 1500 cents\n",
        )
        assert total == "alice: 1500 cents\n", "".join(dev.output.lines)
        letters = until(
            lambda: run_cli("dlq", "list", "orders", "--json", cwd=project, env=env).stdout,
            lambda out: len(json.loads(out or "[]")) == 1,
        )
        (letter,) = json.loads(letters)
        assert letter["latest"]["error"]["message"] == "order o-4: negative amount"
    text = dev.stopped_output
    assert dev.process.returncode == 0, text
    for port in (ports.kafka, ports.admin, ports.ingress, worker_port):
        assert port_is_free(port), f"port {port} still held after dev stopped:\n{text}"

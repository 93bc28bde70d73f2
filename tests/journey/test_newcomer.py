"""A newcomer's first hour, typed as the README tells it, against the installed wheel.

A fresh venv gets `pip install "<wheel>[test]"`; then, each through the console script on
PATH: `restate-stream init`, the project's own `pytest`, `validate`, `stack up` (on ports of
its own), `worker`, `apply`, `publish` of the sample orders (one of them poison), and what
the user looks at next: `status`, `dlq list`, `tail`, and the object's state through
`restate.create_client` (the project's show_total.py). Engines and the worker are stopped in
a finally, on failure too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from restate_stream.stack import StackPorts
from tests.journey.venvs import MakeVenv, Venv, shown

pytestmark = pytest.mark.journey


def poll(
    check: Callable[[], subprocess.CompletedProcess[str]],
    done: Callable[[subprocess.CompletedProcess[str]], bool],
    *,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """Run `check` until `done` says its result is what the user waits for."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(1)


@pytest.fixture
def stack_home(tmp_path: Path) -> Path:
    return tmp_path / "stack"


@pytest.fixture
def engines(venv: Venv, stack_home: Path, tmp_path: Path) -> Iterator[StackPorts]:
    """`restate-stream stack up` on free ports; `stack down` afterwards, whatever happened."""
    ports = StackPorts.free()
    flags = [
        arg
        for field, port in vars(ports).items()
        for arg in (f"--{field.replace('_', '-')}-port", str(port))
    ]
    try:
        up = venv.run(
            "restate-stream", "stack", "up", "--home", str(stack_home), *flags, cwd=tmp_path
        )
        assert up.returncode == 0, shown(up)
        assert f"Kafka bootstrap servers: 127.0.0.1:{ports.kafka}" in up.stdout
        yield ports
    finally:
        down = venv.run("restate-stream", "stack", "down", "--home", str(stack_home), cwd=tmp_path)
        assert down.returncode == 0, shown(down)


@pytest.fixture
def venv(wheel: Path, make_venv: MakeVenv) -> Venv:
    return make_venv(f"{wheel}[test]")


def test_init_test_run_publish_and_inspect(venv: Venv, engines: StackPorts, tmp_path: Path) -> None:
    made = venv.run("restate-stream", "init", "shop", cwd=tmp_path)
    assert made.returncode == 0, shown(made)
    project = tmp_path / "shop"

    tests = venv.run("pytest", "-q", cwd=project)
    assert tests.returncode == 0, shown(tests)
    assert "3 passed" in tests.stdout

    worker_port = StackPorts.free().kafka  # one more free port
    env = {
        "ADMIN_URL": f"http://127.0.0.1:{engines.admin}",
        "INGRESS_URL": f"http://127.0.0.1:{engines.ingress}",
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{engines.kafka}",
        "WORKER_URI": f"http://127.0.0.1:{worker_port}",
    }

    def user(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return venv.run(*args, cwd=project, env=env, timeout=timeout)

    valid = user("restate-stream", "validate")
    assert valid.returncode == 0, shown(valid)

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        ["restate-stream", "worker"],
        cwd=project,
        env=venv.env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killed whole below
    )
    try:
        journey(user, worker_port)
    except BaseException:
        log.flush()
        print("--- worker log\n" + (tmp_path / "worker.log").read_text())
        raise
    finally:
        stop_group(worker)
        log.close()


def journey(user: Callable[..., subprocess.CompletedProcess[str]], worker_port: int) -> None:
    registered = poll(
        lambda: user("restate-stream", "plan"),
        lambda r: f"deployment http://127.0.0.1:{worker_port}: registered" in r.stdout,
    )
    assert registered.returncode == 0, shown(registered)

    applied = user("restate-stream", "apply")
    assert applied.returncode == 0, shown(applied)
    assert "change(s) applied" in applied.stdout
    again = user("restate-stream", "apply")
    assert "No changes" in again.stdout, shown(again)

    published = user("restate-stream", "publish", "orders", "--records", "orders.jsonl")
    assert published.returncode == 0, shown(published)
    assert "published 4 of 4 record(s) to orders" in published.stdout

    totals = poll(
        lambda: user("python", "show_total.py", "alice"),
        lambda r: r.stdout == "alice: 1500 cents\n",
    )
    assert totals.stdout == "alice: 1500 cents\n", shown(totals)
    bob = user("python", "show_total.py", "bob")
    assert bob.stdout == "bob: 999 cents\n", shown(bob)

    letters = poll(
        lambda: user("restate-stream", "dlq", "list", "orders", "--json"),
        lambda r: r.returncode == 0 and len(json.loads(r.stdout or "[]")) == 1,
    )
    assert letters.returncode == 0, shown(letters)
    (letter,) = json.loads(letters.stdout)
    assert letter["key"] == "alice" and letter["resolved"] is False
    assert letter["latest"]["error"]["type"] == "TerminalError"
    assert letter["latest"]["error"]["message"] == "order o-4: negative amount"

    status = poll(
        lambda: user("restate-stream", "status", "--json"),
        lambda r: r.returncode == 0 and status_of(r)["total_lag"] == 0,
    )
    orders = status_of(status)
    assert (orders["state"], orders["total_lag"], orders["dead_letters"]) == ("active", 0, 1), (
        shown(status)
    )
    shown_text = user("restate-stream", "status")
    assert shown_text.returncode == 0 and "orders" in shown_text.stdout, shown(shown_text)

    tail = user("restate-stream", "tail", "order-totals")
    assert tail.returncode == 0, shown(tail)
    assert "3 record(s) on order-totals" in tail.stdout, shown(tail)
    assert re.search(r'key=alice  \[event [0-9a-f-]{36}\] \{"total_cents":1500\}', tail.stdout), (
        shown(tail)
    )


def status_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    (orders,) = json.loads(result.stdout)
    assert orders["name"] == "orders"
    return dict(orders)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's process group (its serving processes too), a grace period,
    then SIGKILL to whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)

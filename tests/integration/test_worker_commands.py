"""The commands people run, as subprocesses against the real engines: worker, status, dev."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.admin import TopicAdmin
from restate_stream._util.ports import free_ports, port_is_free
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.serving import GRACEFUL_SECONDS
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.testing import (
    CLI,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    run_cli,
    wait_until,
)
from tests.integration.dev_process import port_flags, running_dev
from tests.integration.processes import alive, descendants

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[2]


def bindings(admin_url: str, bootstrap: str, topic: str, worker_port: int, **first: Any) -> str:
    """Two bindings on one topic served by pids_app's two processes; `first` overrides
    fields of the first binding."""
    return bindings_yaml(
        admin_url=admin_url,
        clusters={topic: bootstrap},
        topics={topic: {"cluster": topic, "partitions": 2}},
        worker={
            "app": "tests.integration.pids_app:app",
            "uri": f"http://127.0.0.1:{worker_port}",
            "processes": 2,
        },
        bindings=[
            {"name": topic, "topic": topic, "handler": "Account/apply_payment", **first},
            {"name": f"{topic}-probe", "topic": topic, "handler": "PidProbe/record"},
        ],
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=REPO)


async def test_worker_serves_registers_applies_and_stops_on_sigterm(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    port = free_ports(1)[0]
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings(
            restate_stream_stack.admin_url, restate_stream_stack.bootstrap_servers, topic, port
        )
    )
    worker = subprocess.Popen(
        [*CLI, "worker", "-f", str(path), "--apply"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:

        async def subscribed() -> list[Any]:
            return [s for s in await restate_admin.list_subscriptions() if s.source.endswith(topic)]

        await wait_until(subscribed, bool, timeout=60)
        # Registered again over HTTP/1.1 so both processes get connections (test_metrics.py
        # says why); serving over h2c, the default, is what every other worker test uses.
        await restate_admin.register_deployment(f"http://127.0.0.1:{port}", http1=True)
        produce_json(
            restate_stream_stack.bootstrap_servers,
            topic,
            [(f"{topic}-{i % 40}", {"amount_cents": 100}) for i in range(200)],
        )

        async def balances() -> dict[str, Any]:
            every = await object_state(restate_admin, "Account", "balance")
            return {k: v for k, v in every.items() if k.startswith(topic)}

        final = await wait_until(balances, lambda b: sum(b.values()) >= 200 * 100, timeout=60)
        assert final == {f"{topic}-{k}": 5 * 100 for k in range(40)}

        # Both processes serve invocations: the probe saw more than one worker pid.
        async def pids() -> dict[str, list[int]]:
            every = await object_state(restate_admin, "PidProbe", "pids")
            return {k: v for k, v in every.items() if k.startswith(topic)}

        served = await wait_until(pids, lambda p: sum(map(len, p.values())) >= 200, timeout=60)
        distinct = {pid for each in served.values() for pid in each}
        assert len(distinct) == 2 and worker.pid not in distinct, distinct

        second = cli("apply", "-f", str(path))
        assert second.returncode == 0 and "No changes" in second.stdout, second.stdout

        status = cli("status", "-f", str(path), "--json")
        assert status.returncode == 0, status.stderr
        entries = json.loads(status.stdout)
        by_name = {e["name"]: e for e in entries}
        entry = by_name[topic]
        assert entry["state"] == "active" and entry["invocations"]["succeeded"] == 200
        human = cli("status", "-f", str(path))
        [row] = [line for line in human.stdout.splitlines() if line.startswith(f"{topic} ")]
        assert "active" in row and "succeeded 200" in row, human.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            out, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            out, _ = worker.communicate()
            pytest.fail(f"worker ignored SIGTERM:\n{out}")
        await drop_cluster(restate_admin, topic)
    assert worker.returncode == 0, out
    assert f"registered http://127.0.0.1:{port}" in out and "2 process(es)" in out
    # Each log line a handler writes names the invocation it ran under.
    probes = re.findall(rf"\[(inv_\w+)\] probe {topic}-\d+ served by pid \d+", out)
    assert len(set(probes)) >= 200, out[-3000:]
    assert port_is_free(port), "the worker's processes outlived SIGTERM"


def read_page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as page:
        assert page.status == 200
        text: str = page.read().decode()
        return text


def dev_on_free_ports(tmp_path: Path, topic: str) -> tuple[StackPorts, int, list[str]]:
    """dev's arguments for the two bindings on `topic`, its engines and worker on free ports."""
    ports = StackPorts.free()
    worker_port = free_ports(1)[0]
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings(f"http://127.0.0.1:{ports.admin}", f"127.0.0.1:{ports.kafka}", topic, worker_port)
    )
    return (
        ports,
        worker_port,
        ["-f", str(path), "--home", str(tmp_path / "home"), *port_flags(ports)],
    )


async def test_dev_runs_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    topic = "dev-payments"
    ports, worker_port, args = dev_on_free_ports(tmp_path, topic)
    with running_dev(args, cwd=REPO) as dev:
        output = dev.output
        board = next((line for line in output.lines if "dev: dashboard at " in line), "")
        board_url = board.split("dev: dashboard at ", 1)[-1].strip()
        page = await asyncio.to_thread(read_page, board_url)  # dev's dashboard panel
        assert topic in page, page[:2000]
        produce_json(
            f"127.0.0.1:{ports.kafka}",
            topic,
            [("dev-acct", {"amount_cents": 5}) for _ in range(10)],
        )
        async with AdminClient(f"http://127.0.0.1:{ports.admin}") as admin:

            async def balance() -> dict[str, Any]:
                return await object_state(admin, "Account", "balance")

            assert (await wait_until(balance, lambda b: b.get("dev-acct") == 50))["dev-acct"] == 50
    text = dev.stopped_output
    assert dev.process.returncode == 0, text
    assert "dev: stopping" in text
    for port in (ports.kafka, ports.admin, ports.ingress, worker_port):
        assert port_is_free(port), f"port {port} still held after dev stopped:\n{text}"


def test_nothing_dev_started_outlives_a_sigkill_of_dev(tmp_path: Path) -> None:
    """dev cannot stop anything when SIGKILLed: the kernel's parent-death signal does. The
    worker (in a process group of its own) stops at once, its serving process too (granian
    would kill one still running GRACEFUL_SECONDS later), and the engines after it."""
    ports, worker_port, args = dev_on_free_ports(tmp_path, "dev-killed")
    with running_dev(args, cwd=REPO) as dev:
        everything = descendants(dev.process.pid)  # the engines, the worker and its own
        # granian names its processes `granian asgi ADDRESS TARGET [worker-N]`.
        worker = {pid for pid, line in everything.items() if line.startswith("granian ")}
        assert len(worker) >= 2, everything  # the worker and its serving process
        dev.process.kill()
        dev.process.wait()
        killed = time.monotonic()
        took: dict[str, float] = {}
        while time.monotonic() < killed + 20:
            if "worker" not in took and not any(map(alive, worker)):
                took["worker"] = time.monotonic() - killed
            if not any(map(alive, everything)):
                took["everything"] = time.monotonic() - killed
                break
            time.sleep(0.1)
        left = {pid: line for pid, line in everything.items() if alive(pid)}
        for pid in left:  # no orphan outlives the test, whatever it asserts
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print(f"gone after dev's SIGKILL: {took}")
    assert not left, f"outlived dev's SIGKILL by 20 s: {left}"
    assert took.get("worker", 20) < GRACEFUL_SECONDS / 2, took
    for port in (ports.kafka, ports.admin, ports.ingress, worker_port):
        assert port_is_free(port), f"port {port} still held after dev was killed"


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"handler": "Account/apply_paymnt"}, "has no handler 'apply_paymnt'"),
        ({"strat": "earliest"}, "did you mean 'start'"),
        ({"retry": {"initial_interval": "soon"}}, "duration"),
    ],
)
async def test_a_broken_file_applies_nothing(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    tmp_path: Path,
    broken: dict[str, Any],
    expected: str,
) -> None:
    topic = f"broken-{uuid.uuid4().hex[:8]}"
    text = bindings(
        restate_stream_stack.admin_url, restate_stream_stack.bootstrap_servers, topic, 1, **broken
    )
    path = tmp_path / "bindings.yaml"
    path.write_text(text)
    before = (await restate_admin.list_kafka_clusters(), await restate_admin.list_subscriptions())
    result = cli("apply", "-f", str(path))
    assert result.returncode == 2
    assert f"{path}:" in result.stderr and expected in result.stderr, result.stderr
    after = (await restate_admin.list_kafka_clusters(), await restate_admin.list_subscriptions())
    assert after == before, "nothing was applied"
    topics = TopicAdmin(restate_stream_stack.bootstrap_servers).topics()
    assert topic not in topics, f"the declared topic {topic} was created by a broken file"

"""plan, apply, status and the status exporter (metrics) against the 3-node Restate cluster of
deploy/restate-cluster with one node SIGKILLed, as a user runs them: pointed at a live node (by
the file's restate.admin_url or by --admin-url) they work; pointed at the dead node each says
so in one line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from restate_stream._util.ports import free_ports, wait_until_listening
from restate_stream.control.admin import AdminApiError, AdminClient, AdminUnavailableError
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    CLI,
    bindings_yaml,
    object_state,
    produce_json,
    run_cli,
    scrape_metrics,
    serve_app,
    wait_until,
)
from tests.integration.bindings_app import app
from tests.restate_nodes import RestateNode, RestateNodes, running_cluster

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
VICTIM = 3  # any one of the three: each runs a metadata server, and 2 of 3 keep the quorum
PARTITIONS = 2
# Node 3's subscription consumer holds its Kafka partitions until the group drops it: 10 s by
# restate-stream's default, 6 s with these (docs/cluster.md, "A Restate node").
CONSUMER = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1500"}


@pytest.fixture
def restate_nodes(tmp_path: Path) -> Iterator[RestateNodes]:
    with running_cluster(tmp_path / "restate") as nodes:
        yield nodes


def cli(*args: str) -> tuple[int, str, str]:
    done = run_cli(*args, cwd=REPO, timeout=180)
    return done.returncode, done.stdout, done.stderr


def binding(topic: str, handler: str) -> dict[str, Any]:
    return {
        "name": topic,
        "topic": topic,
        "handler": f"BindingsLog/{handler}",
        "start": "earliest",
        "options": CONSUMER,
    }


async def test_cli_with_one_restate_node_down(
    restate_stream_stack: LocalStack, restate_nodes: RestateNodes, tmp_path: Path
) -> None:
    first, second, dead = (restate_nodes.nodes[i] for i in (1, 2, VICTIM))
    run = uuid.uuid4().hex[:8]
    cluster, topic_a, topic_b = f"c-{run}", f"down-a-{run}", f"down-b-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers

    def write(path: Path, admin: RestateNode, *bindings: dict[str, Any]) -> str:
        path.write_text(
            bindings_yaml(
                admin_url=admin.admin_url,
                ingress_url=admin.ingress_url,
                clusters={cluster: bootstrap},
                topics={
                    t: {"cluster": cluster, "partitions": PARTITIONS} for t in (topic_a, topic_b)
                },
                bindings=bindings,
            )
        )
        return str(path)

    # The file as it was written when node 3 was the one to talk to.
    one = write(tmp_path / "one.yaml", dead, binding(topic_a, "record_a"))
    # The same and one more binding, naming a node that stays up.
    two = write(
        tmp_path / "two.yaml", first, binding(topic_a, "record_a"), binding(topic_b, "record_b")
    )

    exporter: subprocess.Popen[str] | None = None
    exporter_log = tmp_path / "metrics.log"
    try:
        async with (
            AdminClient(first.admin_url) as admin_1,
            AdminClient(second.admin_url) as admin_2,
            serve_app(app, admin_1),
        ):
            code, out, err = cli("apply", "-f", one)
            assert code == 0, (out, err)

            restate_nodes.kill(VICTIM)

            # At once, while the partitions node 3 led move: its subscription still shows (the
            # invocations may show as unknown for those seconds, the command does not fail).
            code, out, err = cli("status", "-f", one, "--admin-url", second.admin_url)
            assert code == 0, (out, err)
            assert _rows(out)[topic_a][1] == "active", out

            # Pointed at a live node by --admin-url, the file unedited: nothing to change.
            code, out, err = cli("plan", "-f", one, "--admin-url", second.admin_url)
            assert code == 0, (out, err)
            assert "No changes" in out, out

            # A live node by the file: the new binding's topic and subscription, applied.
            code, out, err = cli("plan", "-f", two)
            assert code == 0, (out, err)
            [change] = _changes(out)  # topics and cluster came with the first file
            assert change.startswith(f"+ subscription for {topic_b}: "), out
            code, out, err = cli("apply", "-f", two)
            assert code == 0, (out, err)

            # Read back through another live node.
            subscriptions = await wait_until(
                admin_2.list_subscriptions,
                lambda subs: (
                    {s.source for s in subs}
                    >= {f"kafka://{cluster}/{topic_a}", f"kafka://{cluster}/{topic_b}"}
                ),
                timeout=60,
            )
            assert len(subscriptions) == 2, subscriptions
            code, out, err = cli("plan", "-f", two, "--admin-url", second.admin_url)
            assert code == 0 and "No changes" in out, (out, err)

            # Records flow through both bindings with node 3 down.
            produce_json(bootstrap, topic_a, [(f"{run}-{i}", {"seq": i}) for i in range(4)])
            produce_json(bootstrap, topic_b, [(f"{run}-{i}", {"seq": 10 + i}) for i in range(4)])
            expected_a = {f"{run}-{i}": [i] for i in range(4)}
            expected_b = {f"{run}-{i}": [10 + i] for i in range(4)}
            assert await _state(admin_2, "a", run, expected_a) == expected_a
            assert await _state(admin_2, "b", run, expected_b) == expected_b

            code, out, err = cli("status", "-f", two)
            assert code == 0, (out, err)
            rows = _rows(out)
            assert rows[topic_a][1] == "active" and rows[topic_b][1] == "active", out

            # The status exporter, the file naming the dead node, --admin-url a live one.
            [port] = free_ports(1)
            with exporter_log.open("w") as log:  # a file: a pipe nobody reads could fill up
                exporter = subprocess.Popen(
                    [*CLI, "metrics", "-f", one, "--admin-url", second.admin_url,
                     "--port", str(port)],
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )  # fmt: skip
            assert wait_until_listening(port, timeout=60, alive=lambda: exporter.poll() is None)
            part = (("binding", topic_a), ("part", "invocations"))
            invocations_read = ("restate_stream_status_errors", part)
            active = (("binding", topic_a), ("state", "active"))
            succeeded = (("binding", topic_a), ("status", "succeeded"))

            def exported(m: dict[Any, float]) -> tuple[Any, ...]:
                return (
                    m.get(invocations_read),
                    m.get(("restate_stream_status_up", ())),
                    m.get(("restate_stream_binding_state", active)),
                    m.get(("restate_stream_invocations", succeeded), 0) >= 4,
                )

            # All from one scrape taken once the partitions node 3 led have moved (each scrape
            # queries anew: an earlier one may have read the invocations, a later one not).
            await wait_until(
                lambda: asyncio.to_thread(scrape_metrics, port),
                lambda m: exported(m) == (0, 1, 1, True),
                timeout=90,
                describe=lambda m: f"(read errors, up, active, >= 4 succeeded): {exported(m)}",
            )

            # Pointed at the dead node (the file, or the flag): one line, no traceback.
            unreachable = f"error: Restate admin API at {dead.admin_url} is not reachable: "
            for command in (
                ["status", "-f", one],
                ["plan", "-f", one],
                ["apply", "-f", one],
                ["status", "-f", two, "--admin-url", dead.admin_url],
                ["plan", "-f", two, "--admin-url", dead.admin_url],
                ["apply", "-f", two, "--admin-url", dead.admin_url],
            ):
                code, out, err = cli(*command, "--wait", "1")
                assert code == 2 and out == "", (command, out, err)
                [line] = err.splitlines()
                assert line.startswith(unreachable) and "connection refused" in line, line
                assert "is the server running?" in line, line
            # Nothing was changed through anyone: the dead node's apply stopped at the start.
            assert len(await admin_2.list_subscriptions()) == 2
    except BaseException as exc:
        exc.add_note(restate_nodes.logs_tail())
        if exporter_log.exists():
            exc.add_note(f"--- restate-stream metrics ---\n{exporter_log.read_text()[-4000:]}")
        raise
    finally:
        if exporter is not None:
            os.killpg(exporter.pid, signal.SIGTERM)
            try:
                exporter.wait(10)
            except subprocess.TimeoutExpired:  # never hide the test's own failure behind this
                os.killpg(exporter.pid, signal.SIGKILL)
                exporter.wait()


def _rows(status_output: str) -> dict[str, list[str]]:
    """status's table rows by binding name."""
    return {line.split()[0]: line.split() for line in status_output.splitlines() if line.strip()}


def _changes(plan_output: str) -> list[str]:
    """The plan's change lines (the unchanged ones are indented)."""
    return [line for line in plan_output.splitlines() if line[:1] in ("+", "~", "-")]


async def _state(
    admin: AdminClient, name: str, run: str, expected: dict[str, list[int]]
) -> dict[str, list[int]]:
    async def probe() -> dict[str, list[int]] | str:
        try:
            every = await object_state(admin, "BindingsLog", name)
        except (AdminApiError, AdminUnavailableError) as exc:  # partitions moving off node 3
            return str(exc)
        return {k: v for k, v in every.items() if k.startswith(f"{run}-")}

    result = await wait_until(probe, lambda s: s == expected, timeout=120)
    assert isinstance(result, dict)
    return result

"""SIGTERM while an invocation is in flight: the worker lets it end, then exits 0; SIGTERM
while its own consumer delivers: it stops promptly, committing what Restate accepted."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from connectors import TopicAdmin
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.serving import GRACEFUL_SECONDS, SERVERS, ServerName
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import drop_cluster, wait_exit, wait_until
from tests.integration.test_consumer_delivery import wait_drained
from tests.integration.test_migrate import (
    APP,
    SteadyProducer,
    applied,
    applied_at_least,
    write_bindings,
)

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_lets_the_in_flight_invocation_end(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    tmp_path: Path,
    server: ServerName,
) -> None:
    log = tmp_path / "worker.log"
    worker = WorkerProcess("tests.integration.held_app:app", log, cwd=REPO, server=server)
    worker.start()
    try:
        assert worker.process is not None
        await restate_admin.register_deployment(worker.uri)
        async with httpx.AsyncClient(
            base_url=restate_stream_stack.ingress_url, timeout=120
        ) as ingress:
            call = asyncio.create_task(ingress.post("/Held/run", json=str(tmp_path)))

            async def started() -> bool:
                return (tmp_path / "started").exists()

            await wait_until(started, bool, timeout=60)
            # As a supervisor stops the worker: SIGTERM to its group, the serving processes
            # included, so every one of them has the signal before the handler is released.
            os.killpg(worker.process.pid, signal.SIGTERM)

            async def stopping() -> bool:
                return "worker: stopping on SIGTERM" in log.read_text()

            await wait_until(stopping, bool, timeout=60)
            (tmp_path / "release").touch()
            response = await call
        assert response.status_code == 200 and response.json() == "done", response.text

        async def exit_code() -> int | None:
            assert worker.process is not None
            return worker.process.returncode

        code = await wait_until(exit_code, lambda c: c is not None, timeout=60)
    finally:
        worker.stop()
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text
    # Each serving process stopped by itself, its lifespan shutdown included (granian kills one
    # still running GRACEFUL_SECONDS after SIGTERM; the SDK's SIGTERM hook once kept it running).
    assert "refused to gracefully stop" not in text, text
    # It ended in the attempt that was in flight: no retry ran the handler again.
    assert len((tmp_path / "started").read_text().split()) == 1


async def test_sigterm_stops_a_consumer_worker_promptly_committing_what_was_accepted(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    """A granian worker delivering a binding by its own consumer, SIGTERMed mid-stream, stops
    well before granian would kill it, through its lifespan shutdown: the consumer drains its
    sends and commits what Restate accepted, so the next worker re-reads nothing applied."""
    run = uuid.uuid4().hex[:8]
    stack = restate_stream_stack
    topic = name = f"stopping-{run}"
    port = free_ports(1)[0]
    path = write_bindings(tmp_path / "bindings.yaml", stack, run, name, port, "consumer")
    spec = load_bindings(path)

    def worker(n: int) -> WorkerProcess:
        log = tmp_path / f"worker-{n}.log"
        started = WorkerProcess(APP, log, port=port, cwd=REPO, bindings=path)
        started.start(timeout=60)
        return started

    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 3)
    first = worker(1)
    second: WorkerProcess | None = None
    try:
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        with SteadyProducer(stack.bootstrap_servers, topic, run) as producer:
            await applied_at_least(restate_admin, run, 300)
            assert first.process is not None
            os.killpg(first.process.pid, signal.SIGTERM)  # as a supervisor stops it
            signalled = time.monotonic()
            code = await asyncio.to_thread(wait_exit, first, 3 * GRACEFUL_SECONDS)
            took = time.monotonic() - signalled
        second = worker(2)
        sent = producer.sent
        await applied_at_least(restate_admin, run, sent)
        await wait_drained(stack, spec.bindings[0].consumer_group, topic)
        await asyncio.sleep(2)  # a copy applied late would show now
        final = await applied(restate_admin, run)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        await drop_cluster(restate_admin, f"c-{run}")
    text = first.log_path.read_text()
    print(f"stopped {took:.1f} s after SIGTERM; {sent} records")
    assert code == 0 and took < GRACEFUL_SECONDS / 2, f"exit {code} after {took:.1f} s:\n{text}"
    assert "refused to gracefully stop" not in text, text  # granian killed it
    assert f"binding {name}: delivery stopped; accepted offsets committed" in text, text
    # Whatever the stopped worker had sent and Restate accepted was committed: the next one
    # re-read none of it (a copy would be dropped at the high-water, and logged so).
    assert second is not None
    assert "at or below the high-water" not in second.log_path.read_text()
    for key, seqs in producer.expected().items():
        got = [seq for seq, _, _ in final[key]]
        assert got == seqs, f"{key}: lost, repeated or reordered records"

"""SIGTERM while an invocation is in flight: the worker lets it end, then exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from restate_stream.control.admin import AdminClient
from restate_stream.runtime.serving import SERVERS, ServerName
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import wait_until

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
    # It ended in the attempt that was in flight: no retry ran the handler again.
    assert len((tmp_path / "started").read_text().split()) == 1

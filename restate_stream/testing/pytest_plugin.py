"""pytest fixtures for the real engines, registered through the `pytest11` entry point.

- `restate_stream_stack` (session): a Kafka broker and a Restate server on free ports in a
  temp dir, installed on first use. When a test that uses it fails, the tail of both engine
  logs is attached to the failure report.
- `restate_admin`: an AdminClient for that server.
- `restate_app`: `async with restate_app(app) as served:` serves a Restate app in-process
  with hypercorn and registers it as a deployment.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import pytest_asyncio

from restate_stream.control.admin import AdminClient
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.testing.helpers import RestateApp, ServedApp, serve_app

_started: list[LocalStack] = []


def _progress(line: str) -> None:
    print(f"[restate-stream] {line}", file=sys.stderr)


@pytest.fixture(scope="session")
def restate_stream_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("restate-stream-stack"), StackPorts.free())
    stack.start(progress=_progress)
    _started.append(stack)
    try:
        yield stack
    finally:
        _started.remove(stack)
        stack.stop()


@pytest_asyncio.fixture
async def restate_admin(restate_stream_stack: LocalStack) -> AsyncIterator[AdminClient]:
    async with AdminClient(restate_stream_stack.admin_url) as admin:
        yield admin


@pytest.fixture
def restate_app(restate_admin: AdminClient) -> RestateApp:
    def serve(app: Any) -> AbstractAsyncContextManager[ServedApp]:
        return serve_app(app, restate_admin)

    return serve


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _started and "restate_stream_stack" in getattr(item, "fixturenames", ()):
        report.sections.append(("restate-stream engine logs", _started[-1].logs_tail()))
    return report

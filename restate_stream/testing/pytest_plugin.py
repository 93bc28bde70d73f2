"""pytest fixtures for the real engines, registered through the `pytest11` entry point.

- `restate_stream_stack` (session): a Kafka broker and a Restate server on free loopback ports,
  as an `EngineStack`. By default the local engines (child processes in a temp dir, installed
  on first use); with `--restate-stream-backend=containers` (or RESTATE_STREAM_BACKEND=
  containers) the same engines in containers on a Docker engine (testcontainers). When a test
  that uses it fails, the tail of both engine logs is attached to the failure report.
- `restate_admin`: an AdminClient for that server.
- `restate_app`: `async with restate_app(app) as served:` serves a Restate app in-process
  with hypercorn and registers it as a deployment.

pytest loads this plugin for everyone who installs restate-stream, in their own test runs
too: it must import with the base install alone. What only the `test` extra brings
(pytest-asyncio for the async fixtures, testcontainers for the containers backend) is
imported when a fixture needs it, and its absence fails that test saying what to install.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from restate_stream.control.admin import AdminClient
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.testing.helpers import RestateApp, ServedApp, serve_app
from restate_stream.testing.stacks import (
    BACKEND_ENV,
    BACKEND_OPTION,
    BACKENDS,
    Backend,
    BackendChoiceError,
    EngineStack,
    choose_backend,
)

_started: list[EngineStack] = []

TEST_EXTRA = "pip install 'restate-stream[test]'"

try:
    import pytest_asyncio
except ImportError:  # the base install: only the fixtures that need it say so, when used
    pytest_asyncio = None  # type: ignore[assignment]


def _progress(line: str) -> None:
    print(f"[restate-stream] {line}", file=sys.stderr)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("restate-stream").addoption(
        BACKEND_OPTION,
        choices=BACKENDS,
        default=None,
        help=(
            "where the restate_stream_stack fixture runs Kafka and Restate: 'local' (child "
            "processes, the default) or 'containers' (testcontainers on a Docker engine); "
            f"default from ${BACKEND_ENV}"
        ),
    )


def _backend(config: pytest.Config) -> Backend:
    option: str | None = config.getoption(BACKEND_OPTION)
    try:
        return choose_backend(option, os.environ.get(BACKEND_ENV))
    except BackendChoiceError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    _backend(config)  # a wrong $RESTATE_STREAM_BACKEND fails the run at once, not each test


def pytest_report_header(config: pytest.Config) -> str:
    return f"restate-stream engines: {_backend(config)}"


@pytest.fixture(scope="session")
def restate_stream_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineStack]:
    stack: EngineStack
    if _backend(request.config) == "containers":
        # Imported here: testcontainers is only needed by those who choose it.
        from restate_stream.testing.containers import ContainerStack

        containers = ContainerStack(StackPorts.free())
        containers.start(progress=_progress)  # removes what it started if it fails
        stack = containers
    else:
        local = LocalStack(tmp_path_factory.mktemp("restate-stream-stack"), StackPorts.free())
        local.start(progress=_progress)
        stack = local
    _started.append(stack)
    try:
        yield stack
    finally:
        _started.remove(stack)
        stack.stop()


async def _restate_admin(restate_stream_stack: EngineStack) -> AsyncIterator[AdminClient]:
    async with AdminClient(restate_stream_stack.admin_url) as admin:
        yield admin


if pytest_asyncio is not None:
    restate_admin = pytest_asyncio.fixture(_restate_admin, name="restate_admin")
else:

    @pytest.fixture(name="restate_admin")
    def _no_restate_admin() -> None:
        pytest.fail(
            "the restate_admin and restate_app fixtures are async and need pytest-asyncio: "
            f"{TEST_EXTRA} (or `pip install pytest-asyncio`)",
            pytrace=False,
        )


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

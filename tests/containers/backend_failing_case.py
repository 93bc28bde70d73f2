"""Not collected by itself (no test_ prefix): tests/containers/test_backend.py runs it after
the engine tests on the containers backend, to see what a failing engine test reports."""

from __future__ import annotations

from restate_stream.testing.stacks import EngineStack

MESSAGE = "a deliberate failure, to show the engine logs"


def test_fails_on_purpose(restate_stream_stack: EngineStack) -> None:
    assert restate_stream_stack.bootstrap_servers.startswith("127.0.0.1:")
    raise AssertionError(MESSAGE)

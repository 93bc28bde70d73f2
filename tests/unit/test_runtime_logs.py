"""Log lines carry the invocation id; outside a handler they say '-'."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from restate_stream.runtime import _sdk, logs


def _record() -> logging.LogRecord:
    return logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)


def test_outside_a_handler_the_id_is_a_dash() -> None:
    record = _record()
    assert logs.InvocationIdFilter().filter(record)
    assert record.invocation_id == "-"


def test_inside_a_handler_the_id_is_the_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx: Any = SimpleNamespace(request=lambda: SimpleNamespace(id="inv_123"))
    monkeypatch.setattr(_sdk, "current_context", lambda: ctx)
    record = _record()
    assert logs.InvocationIdFilter().filter(record)
    assert logging.Formatter(logs.FORMAT).format(record).endswith("x [inv_123] hello")
    token = _sdk.restate_context_is_replaying.set(True)
    try:
        assert not logs.InvocationIdFilter().filter(_record()), "replayed lines are dropped"
    finally:
        _sdk.restate_context_is_replaying.reset(token)

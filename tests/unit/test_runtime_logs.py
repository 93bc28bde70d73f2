"""Log lines carry the invocation id (outside a handler: '-'); in JSON mode, lines from a
bound handler also name the binding and the record."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import restate

from restate_stream.bindings import parse_bindings
from restate_stream.runtime import _sdk, logs
from restate_stream.runtime.event import KafkaEvent
from restate_stream.testing import BindingsKit, bindings_yaml


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


async def test_json_lines_from_a_bound_handler_name_the_binding_and_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx: Any = SimpleNamespace(request=lambda: SimpleNamespace(id="inv_42"))
    monkeypatch.setattr(_sdk, "current_context", lambda: ctx)
    obj = restate.VirtualObject("Logged")
    handler_log = logging.getLogger("tests.logged")

    @obj.handler()
    async def on_event(c: restate.ObjectContext, event: KafkaEvent[dict[str, int]]) -> None:
        handler_log.warning("got %d", event.value["n"])

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    collect = Collect()
    collect.setFormatter(logs.JsonFormatter())
    collect.addFilter(logs.InvocationIdFilter())
    handler_log.addHandler(collect)
    try:
        text = bindings_yaml(
            clusters={"local": "127.0.0.1:9"},
            worker={"app": "app:app"},
            bindings=[{"name": "logged", "topic": "events", "handler": "Logged/on_event"}],
        )
        kit = BindingsKit(parse_bindings(text, Path("bindings.yaml"), {}), [obj])
        await kit.deliver("events", {"n": 5}, key="k", partition=2, offset=17)
    finally:
        handler_log.removeHandler(collect)
    (line,) = lines
    assert json.loads(line) | {"time": None} == {
        "time": None,
        "level": "WARNING",
        "logger": "tests.logged",
        "message": "got 5",
        "invocation_id": "inv_42",
        "binding": "logged",
        "topic": "events",
        "partition": 2,
        "offset": 17,
    }

"""The bound handler's decisions, engine-free: decode failure, terminal, retry, exhausted,
dedupe hit/miss/eviction, dead-letter refused or absent, and what `bind` tells Restate."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import restate
from restate.exceptions import SuspendedException
from restate.serde import BytesSerde
from restate.server_context import DisconnectedException

from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.runtime import bound, dedupe
from restate_stream.runtime.bound import (
    DEDUPE_WINDOW,
    LEGACY_DEDUPE_STATE,
    SEEN_COUNT,
    SEEN_PREFIX,
    BoundHandler,
    bind,
    remembered_ids,
)
from restate_stream.runtime.dead_letter import REDRIVE_OF_HEADER, RESOLVED_TYPE
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.high_water import HIGH_WATER_PREFIX, high_water_state
from restate_stream.testing import (
    MemoryContext,
    MemoryPublisher,
    bindings_yaml,
    invoke,
    kafka_headers,
)

TOPIC = "orders"
DLQ = "orders-dlq"


class Sink:
    """A virtual object whose handler does what the test scripts, and records its calls."""

    def __init__(self) -> None:
        self.obj = restate.VirtualObject("Sink")
        self.calls: list[Any] = []
        self.fail_with: list[BaseException] = []  # raised in order by the next calls
        calls, fail_with = self.calls, self.fail_with

        @self.obj.handler()
        async def consume(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> str:
            calls.append(event.value)
            if fail_with:
                raise fail_with.pop(0)
            return f"ok {event.value}"

        @self.obj.handler()
        async def plain(ctx: restate.ObjectContext, value: dict[str, Any]) -> str:
            calls.append(value)
            return "plain"


def spec(processes: int = 1, **binding: Any) -> BindingsFile:
    fields = {"name": "orders", "topic": TOPIC, "handler": "Sink/consume", **binding}
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        worker={"app": "app:app", "processes": processes},
        bindings=[fields],
    )
    return parse_bindings(text, Path("bindings.yaml"), {})


def bound_sink(**binding: Any) -> tuple[Sink, MemoryPublisher]:
    sink, publisher = Sink(), MemoryPublisher()
    wrapped = bind([sink.obj], spec(**binding), {"local": publisher})
    assert wrapped == [binding.get("handler", "Sink/consume")]
    return sink, publisher


def ctx(offset: int = 5, invocation: str = "inv_1", **state: Any) -> MemoryContext:
    headers = kafka_headers(TOPIC, partition=1, offset=offset, key="k-1")
    return MemoryContext("k-1", headers=headers, invocation_id=invocation, state=state)


async def consume_next(sink: Sink, c: MemoryContext, raw: bytes) -> Any:
    """The partition's next record (one offset further: a repeat of one is a redelivery, which
    the object's high-water drops before dedupe sees it)."""
    c.headers["kafka.offset"] = str(int(c.headers["kafka.offset"]) + 1)
    return await invoke(sink.obj, "consume", c, raw)


def enveloped(event_id: str, data: Any) -> bytes:
    return cloudevent(event_id, "orders.placed", "test", "2024-01-01T00:00:00Z", data)


async def test_a_decoded_record_reaches_the_handler_with_its_coordinates() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ)
    assert await invoke(sink.obj, "consume", ctx(), b'{"n": 1}') == "ok {'n': 1}"
    assert sink.calls == [{"n": 1}] and publisher.sent == []


async def test_a_handler_taking_the_value_gets_the_value_alone() -> None:
    sink, _ = bound_sink(handler="Sink/plain")
    assert await invoke(sink.obj, "plain", ctx(), b'{"n": 2}') == "plain"
    assert sink.calls == [{"n": 2}]


async def test_an_undecodable_record_is_dead_lettered_and_the_handler_not_called() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ)
    assert await invoke(sink.obj, "consume", ctx(offset=9), b"{not json") is None
    assert sink.calls == []
    [sent] = publisher.sent
    assert (sent.topic, sent.key, sent.event_type) == (DLQ, "k-1", "restate-stream.dead-letter")
    assert sent.retry_forever  # a dead letter is never given up on
    record = sent.value
    assert record["error"]["type"] == "DecodeError" and "invalid JSON" in record["error"]["message"]
    assert record["source"]["topic"] == TOPIC and record["source"]["partition"] == 1
    assert record["source"]["offset"] == 9 and record["value"] == "{not json"
    assert record["binding"] == "orders" and record["attempts"] == 1


async def test_a_non_utf8_value_is_kept_as_base64_in_the_dead_letter() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ)
    await invoke(sink.obj, "consume", ctx(), b"\xff\x00")
    record = publisher.sent[0].value
    assert record["value"] is None and record["value_base64"] == "/wA="


@pytest.mark.parametrize("wrapped", [False, True], ids=["terminal", "wrapped-terminal"])
async def test_a_terminal_error_is_dead_lettered_at_once(wrapped: bool) -> None:
    error: Exception = restate.TerminalError("order 7 is cancelled")
    if wrapped:  # the SDK fails the invocation for a TerminalError anywhere in the causes
        cause, error = error, ValueError("wrapper")
        error.__cause__ = cause
    sink, publisher = bound_sink(dead_letter=DLQ, retry={"max_attempts": 5})
    sink.fail_with.append(error)
    assert await invoke(sink.obj, "consume", ctx(), b'{"n": 7}') is None
    [sent] = publisher.sent
    assert sent.value["error"] == {"type": "TerminalError", "message": "order 7 is cancelled"}
    assert sent.value["attempts"] == 1


async def test_a_retryable_error_is_raised_until_max_attempts_then_dead_lettered() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ, retry={"max_attempts": 3})
    sink.fail_with.extend(RuntimeError(f"down {i}") for i in range(3))
    for attempt in (1, 2):
        with pytest.raises(RuntimeError, match=f"down {attempt - 1}"):
            await invoke(sink.obj, "consume", ctx(), b'{"n": 1}')
        assert publisher.sent == [], f"dead-lettered after {attempt} of 3 attempts"
    assert await invoke(sink.obj, "consume", ctx(), b'{"n": 1}') is None
    [sent] = publisher.sent
    assert sent.value["error"] == {"type": "RetriesExhausted", "message": "RuntimeError: down 2"}
    assert sent.value["attempts"] == 3
    # The count starts over for the same invocation id after the dead letter.
    sink.fail_with.append(RuntimeError("again"))
    with pytest.raises(RuntimeError, match="again"):
        await invoke(sink.obj, "consume", ctx(), b'{"n": 1}')


async def test_without_max_attempts_a_retryable_error_is_always_retried() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ)
    sink.fail_with.extend(RuntimeError("down") for _ in range(50))
    for _ in range(50):
        with pytest.raises(RuntimeError):
            await invoke(sink.obj, "consume", ctx(), b'{"n": 1}')
    assert publisher.sent == []


async def test_attempts_are_counted_per_invocation_and_reset_by_a_success() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ, retry={"max_attempts": 2})
    sink.fail_with.extend([RuntimeError("a"), RuntimeError("b")])
    with pytest.raises(RuntimeError):
        await invoke(sink.obj, "consume", ctx(invocation="inv_a"), b'{"n": 1}')
    with pytest.raises(RuntimeError):  # another invocation: its first failure, not the second
        await invoke(sink.obj, "consume", ctx(invocation="inv_b"), b'{"n": 2}')
    assert publisher.sent == []
    assert await invoke(sink.obj, "consume", ctx(invocation="inv_a"), b'{"n": 1}') == "ok {'n': 1}"
    sink.fail_with.append(RuntimeError("c"))
    with pytest.raises(RuntimeError):  # inv_a succeeded: its count started over
        await invoke(sink.obj, "consume", ctx(invocation="inv_a"), b'{"n": 1}')
    assert publisher.sent == []


@pytest.mark.parametrize(
    "error",
    [DisconnectedException(), RuntimeError("wrapped suspension")],
    ids=["disconnected", "wrapped-sdk-signal"],
)
async def test_an_ended_attempt_is_neither_counted_nor_dead_lettered(error: Exception) -> None:
    if isinstance(error, RuntimeError):
        error.__cause__ = SuspendedException()
    sink, publisher = bound_sink(dead_letter=DLQ, retry={"max_attempts": 1})
    sink.fail_with.append(error)
    with pytest.raises(type(error)):
        await invoke(sink.obj, "consume", ctx(), b'{"n": 1}')
    assert publisher.sent == []
    sink.fail_with.append(RuntimeError("real"))  # the first real failure is the first attempt
    assert await invoke(sink.obj, "consume", ctx(), b'{"n": 1}') is None
    assert publisher.sent[0].value["attempts"] == 1


async def test_without_a_dead_letter_topic_a_dropped_record_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, publisher = bound_sink()
    with caplog.at_level(logging.ERROR, logger="restate_stream.runtime.bound"):
        assert await invoke(sink.obj, "consume", ctx(offset=11), b"{bad") is None
    assert publisher.sent == []
    [entry] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = entry.getMessage()
    assert "dropped record" in message and "orders[1]@11" in message and "inv_1" in message
    assert "DecodeError" in message and "no dead_letter topic" in message


async def test_a_dead_letter_the_broker_refuses_fails_the_attempt_instead_of_losing_it() -> None:
    sink, publisher = bound_sink(dead_letter=DLQ)
    publisher.refuse = restate.TerminalError("record too large")
    with pytest.raises(RuntimeError) as caught:
        await invoke(sink.obj, "consume", ctx(offset=3), b"{bad")
    assert not isinstance(caught.value, restate.TerminalError)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    message = str(caught.value)
    assert "orders[1]@3" in message and repr(DLQ) in message and "record too large" in message


async def test_the_dead_letter_is_logged_with_where_it_went(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, _ = bound_sink(dead_letter=DLQ)
    with caplog.at_level(logging.WARNING, logger="restate_stream.runtime.bound"):
        await invoke(sink.obj, "consume", ctx(offset=4), b"{bad")
    [entry] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"to {DLQ}[0]@0" in entry.getMessage() and "orders[1]@4" in entry.getMessage()


def dedupe_entries(c: MemoryContext) -> list[str]:
    return [name for name in c.state if name.startswith("restate-stream.seen")]


async def test_dedupe_drops_an_event_id_seen_before_and_passes_new_ones() -> None:
    sink, _ = bound_sink(dedupe=True)
    c = ctx()
    await consume_next(sink, c, enveloped("e-1", {"n": 1}))
    await consume_next(sink, c, enveloped("e-1", {"n": 1}))  # a duplicate: dropped
    await consume_next(sink, c, enveloped("e-2", {"n": 2}))
    assert sink.calls == [{"n": 1}, {"n": 2}]
    assert remembered_ids(c.state) == ["e-1", "e-2"]
    assert c.state[SEEN_COUNT] == 2 and c.state[SEEN_PREFIX + "e-2"] == 1


async def test_without_dedupe_a_repeated_event_id_is_processed_again() -> None:
    sink, _ = bound_sink()
    c = ctx()
    for _ in range(2):
        await consume_next(sink, c, enveloped("e-1", {"n": 1}))
    assert sink.calls == [{"n": 1}, {"n": 1}] and dedupe_entries(c) == []


async def test_dedupe_ignores_records_without_an_event_id() -> None:
    sink, _ = bound_sink(dedupe=True)
    c = ctx()
    for _ in range(2):
        await consume_next(sink, c, b'{"n": 1}')
    assert sink.calls == [{"n": 1}, {"n": 1}] and dedupe_entries(c) == []


async def test_the_dedupe_window_keeps_the_last_ids_and_evicts_the_oldest() -> None:
    assert DEDUPE_WINDOW == 1000
    sink, _ = bound_sink(dedupe=True)
    c = ctx()
    older = [f"old-{i}" for i in range(DEDUPE_WINDOW)]
    for event_id in older:
        await consume_next(sink, c, enveloped(event_id, {"n": 0}))
    assert remembered_ids(c.state) == older and len(sink.calls) == DEDUPE_WINDOW
    sink.calls.clear()
    await consume_next(sink, c, enveloped("old-0", {"n": 0}))  # the oldest: still in
    assert sink.calls == []
    await consume_next(sink, c, enveloped("new", {"n": 1}))
    assert remembered_ids(c.state) == [*older[1:], "new"]  # the oldest made room
    await consume_next(sink, c, enveloped("old-0", {"n": 2}))  # evicted: processed
    await consume_next(sink, c, enveloped(older[-1], {"n": 3}))  # the newest old one
    await consume_next(sink, c, enveloped("old-1", {"n": 4}))  # evicted by old-0
    assert sink.calls == [{"n": 1}, {"n": 2}, {"n": 4}]
    assert remembered_ids(c.state) == [*older[3:], "new", "old-0", "old-1"]
    # Bounded: one entry per id in the window, one ring slot per id, the counter.
    assert len(dedupe_entries(c)) == 2 * DEDUPE_WINDOW + 1
    assert SEEN_PREFIX + "old-2" not in c.state and SEEN_PREFIX + "old-3" in c.state


class CountingContext(MemoryContext):
    """Counts state operations and the size of the values read and written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ops = 0
        self.largest = 0

    def _saw(self, name: str, value: Any) -> None:
        if name.startswith(HIGH_WATER_PREFIX):
            return  # dedupe's cost is counted; the high-water's is the same for every record
        self.ops += 1
        self.largest = max(self.largest, len(json.dumps(value)))

    async def get(self, name: str, *args: Any, **kwargs: Any) -> Any:
        value = await super().get(name, *args, **kwargs)
        self._saw(name, value)
        return value

    def set(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        super().set(name, value, *args, **kwargs)
        self._saw(name, value)

    def clear(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().clear(name, *args, **kwargs)
        self._saw(name, None)


async def test_a_record_costs_the_same_state_operations_with_a_full_window() -> None:
    sink, _ = bound_sink(dedupe=True)
    headers = kafka_headers(TOPIC, partition=1, offset=5, key="k-1")
    c = CountingContext("k-1", headers=headers)
    costs = []
    for i in range(2 * DEDUPE_WINDOW + 2):
        c.ops = c.largest = 0
        await consume_next(sink, c, enveloped(f"e-{i:05d}", {"n": i}))
        costs.append((c.ops, c.largest))
    # 3 gets, 3 sets; the first record also looks for a list to migrate, and from the
    # window's end on each record clears the id it evicts. No value is larger than one id.
    ops = [n for n, _ in costs]
    assert ops == [7] + [6] * (DEDUPE_WINDOW - 1) + [7] * (DEDUPE_WINDOW + 2)
    assert max(size for _, size in costs) == len('"e-00000"')
    c.ops = c.largest = 0
    await consume_next(sink, c, enveloped("e-01999", {"n": 0}))  # a duplicate
    assert (c.ops, c.largest) == (2, 4) and len(sink.calls) == 2 * DEDUPE_WINDOW + 2


async def test_the_window_of_earlier_versions_is_migrated_and_its_ids_still_dropped() -> None:
    sink, _ = bound_sink(dedupe=True)
    older = [f"old-{i}" for i in range(DEDUPE_WINDOW)]
    c = ctx(**{LEGACY_DEDUPE_STATE: older})
    assert remembered_ids(c.state) == older
    await consume_next(sink, c, enveloped("old-0", {"n": 0}))  # upgraded: still a dup
    assert sink.calls == []
    assert LEGACY_DEDUPE_STATE not in c.state and remembered_ids(c.state) == older
    await consume_next(sink, c, enveloped(older[-1], {"n": 0}))
    await consume_next(sink, c, enveloped("new", {"n": 1}))
    await consume_next(sink, c, enveloped("old-0", {"n": 2}))  # now evicted
    await consume_next(sink, c, enveloped("old-2", {"n": 0}))  # still in
    assert sink.calls == [{"n": 1}, {"n": 2}]
    assert remembered_ids(c.state) == [*older[2:], "new", "old-0"]
    assert len(dedupe_entries(c)) == 2 * DEDUPE_WINDOW + 1


async def test_a_short_old_window_is_migrated_when_the_first_record_is_new() -> None:
    sink, _ = bound_sink(dedupe=True)
    c = ctx(**{LEGACY_DEDUPE_STATE: ["a", "b", "a", "c"]})  # an id listed twice: its last place
    await consume_next(sink, c, enveloped("d", {"n": 1}))
    assert LEGACY_DEDUPE_STATE not in c.state
    assert remembered_ids(c.state) == ["b", "a", "c", "d"] and c.state[SEEN_COUNT] == 4
    for event_id in ["a", "b", "c", "d"]:
        await consume_next(sink, c, enveloped(event_id, {"n": 2}))
    assert sink.calls == [{"n": 1}]


async def test_a_shrunk_window_forgets_ids_beyond_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sink, _ = bound_sink(dedupe=True)
    c = ctx()
    for event_id in ["a", "b", "c", "d"]:
        await consume_next(sink, c, enveloped(event_id, {"n": 0}))
    monkeypatch.setattr(dedupe, "DEDUPE_WINDOW", 2)
    assert remembered_ids(c.state) == ["c", "d"]
    await consume_next(sink, c, enveloped("b", {"n": 1}))  # outside the new window
    await consume_next(sink, c, enveloped("d", {"n": 2}))  # inside: dropped
    assert sink.calls[4:] == [{"n": 1}]


async def test_a_dead_lettered_event_is_not_remembered_so_a_redrive_runs_it() -> None:
    sink, publisher = bound_sink(dedupe=True, dead_letter=DLQ)
    c = ctx()
    sink.fail_with.append(restate.TerminalError("not yet"))
    await consume_next(sink, c, enveloped("e-9", {"n": 9}))
    assert len(publisher.sent) == 1 and remembered_ids(c.state) == []
    assert await consume_next(sink, c, enveloped("e-9", {"n": 9})) == "ok {'n': 9}"
    assert sink.calls == [{"n": 9}, {"n": 9}] and remembered_ids(c.state) == ["e-9"]


async def test_a_redrive_of_an_id_in_the_window_is_dropped_and_resolved() -> None:
    sink, publisher = bound_sink(dedupe=True, dead_letter=DLQ)
    c = ctx()
    await consume_next(sink, c, enveloped("e-3", {"n": 3}))
    c.headers[REDRIVE_OF_HEADER] = f"{DLQ}/0/4"
    assert await consume_next(sink, c, enveloped("e-3", {"n": 3})) is None
    assert sink.calls == [{"n": 3}], "processed once"
    [sent] = publisher.sent
    assert (sent.topic, sent.event_type) == (DLQ, RESOLVED_TYPE)
    assert sent.value["redrive_of"] == {"topic": DLQ, "partition": 0, "offset": 4}


async def test_a_failed_attempt_is_not_remembered_by_dedupe() -> None:
    sink, _ = bound_sink(dedupe=True, retry={"max_attempts": 3})
    c = ctx()
    sink.fail_with.append(RuntimeError("down"))
    with pytest.raises(RuntimeError):
        await consume_next(sink, c, enveloped("e-1", {"n": 1}))
    assert remembered_ids(c.state) == []
    await consume_next(sink, c, enveloped("e-1", {"n": 1}))  # the retry runs it
    assert sink.calls == [{"n": 1}, {"n": 1}] and remembered_ids(c.state) == ["e-1"]


def test_bind_keeps_results_for_redrives_and_takes_raw_bytes() -> None:
    sink, _ = bound_sink()
    handler = sink.obj.handlers["consume"]
    assert isinstance(handler.fn, BoundHandler)
    assert handler.idempotency_retention == timedelta(days=1) == bound.REDRIVE_WINDOW
    assert isinstance(handler.handler_io.input_serde, BytesSerde)
    assert handler.handler_io.accept == "*/*" and handler.arity == 2
    assert handler.invocation_retry_policy is None  # no retry block: Restate's defaults
    assert sink.obj.handlers["plain"].idempotency_retention is None  # unbound: untouched


@pytest.mark.parametrize(("processes", "backstop"), [(1, 8), (3, 16)])
def test_bind_sets_the_retry_policy_with_a_backstop_over_all_processes(
    processes: int, backstop: int
) -> None:
    sink = Sink()
    retry = {"max_attempts": 4, "initial_interval": "50ms", "max_interval": "2s", "factor": 3}
    bind([sink.obj], spec(processes, retry=retry), {"local": MemoryPublisher()})
    policy = sink.obj.handlers["consume"].invocation_retry_policy
    assert policy is not None
    assert policy.max_attempts == backstop and policy.on_max_attempts == "pause"
    assert policy.initial_interval == timedelta(milliseconds=50)
    assert policy.max_interval == timedelta(seconds=2) and policy.exponentiation_factor == 3


def test_bind_without_max_attempts_sets_no_backstop() -> None:
    sink = Sink()
    bind([sink.obj], spec(retry={"initial_interval": "1s"}), {"local": MemoryPublisher()})
    policy = sink.obj.handlers["consume"].invocation_retry_policy
    assert policy is not None and policy.max_attempts is None
    assert policy.initial_interval == timedelta(seconds=1)


def test_binding_twice_wraps_the_users_function_once_and_skips_unknown_services() -> None:
    sink = Sink()
    bind([sink.obj], spec(), {"local": MemoryPublisher()})
    first = sink.obj.handlers["consume"].fn
    assert isinstance(first, BoundHandler)
    bind([sink.obj], spec(), {"local": MemoryPublisher()})
    second = sink.obj.handlers["consume"].fn
    assert isinstance(second, BoundHandler) and second.fn is first.fn
    assert bind([restate.VirtualObject("Other")], spec()) == []


def test_bind_makes_one_publisher_per_cluster_when_none_is_given() -> None:
    sink = Sink()
    bind([sink.obj], spec(dead_letter=DLQ))
    handler = sink.obj.handlers["consume"].fn
    assert isinstance(handler, BoundHandler)
    assert handler.publisher.properties == {"bootstrap.servers": "127.0.0.1:9"}


# --- the high-water: a record applied before is dropped, whichever delivery brings it again ----


async def test_a_record_at_or_below_the_high_water_is_dropped_and_a_later_one_applied() -> None:
    sink, _ = bound_sink()
    c = ctx(offset=7)
    await invoke(sink.obj, "consume", c, b'{"n": 7}')
    assert c.state[high_water_state("orders")] == {f"{TOPIC}/1": 7}
    for again in (7, 6):  # the same record from the other delivery, and an older one
        c.headers["kafka.offset"] = str(again)
        assert await invoke(sink.obj, "consume", c, b'{"n": 0}') is None
    c.headers["kafka.offset"] = "8"
    await invoke(sink.obj, "consume", c, b'{"n": 8}')
    assert sink.calls == [{"n": 7}, {"n": 8}]
    assert c.state[high_water_state("orders")] == {f"{TOPIC}/1": 8}


async def test_a_dead_lettered_record_moves_the_high_water_so_its_copy_is_not_lettered_again() -> (
    None
):
    sink, publisher = bound_sink(dead_letter=DLQ)
    c = ctx(offset=3)
    await invoke(sink.obj, "consume", c, b"{bad")
    await invoke(sink.obj, "consume", c, b"{bad")  # delivered again
    assert len(publisher.sent) == 1
    assert c.state[high_water_state("orders")] == {f"{TOPIC}/1": 3}


async def test_a_redrive_passes_below_the_high_water_and_leaves_it() -> None:
    sink, _ = bound_sink(dead_letter=DLQ)
    c = ctx(offset=3)
    await invoke(sink.obj, "consume", c, b'{"n": 3}')
    c.headers["kafka.offset"] = "9"
    await invoke(sink.obj, "consume", c, b'{"n": 9}')
    c.headers.update({"kafka.offset": "3", REDRIVE_OF_HEADER: f"{DLQ}/0/17"})
    await invoke(sink.obj, "consume", c, b'{"n": 3}')
    assert sink.calls == [{"n": 3}, {"n": 9}, {"n": 3}]
    assert c.state[high_water_state("orders")] == {f"{TOPIC}/1": 9}


async def test_a_shared_handler_keeps_no_high_water() -> None:
    obj = restate.VirtualObject("Reader")
    calls: list[Any] = []

    @obj.handler(kind="shared")
    async def read(ctx: restate.ObjectSharedContext, event: KafkaEvent[dict[str, Any]]) -> None:
        calls.append(event.value)

    bind([obj], spec(handler="Reader/read"))
    c = ctx(offset=4)
    for _ in range(2):
        await invoke(obj, "read", c, b'{"n": 4}')
    assert len(calls) == 2 and c.state == {}

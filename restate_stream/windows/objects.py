"""The virtual object restate-stream serves for a window binding, named after the binding.

One object per record key (the binding's key), its windows in one state entry (`windows`,
assign.KeyWindows as JSON). Three handlers:

- `add` (exclusive): the binding's target, bound like any handler (runtime/bound.py decodes
  the record, dead-letters what cannot be decoded); folds the record into its windows, sets a
  timer for each window it opens, emits what closed (or, with `emit: current`, what changed),
  and writes the state, all in one invocation.
- `close` (exclusive): the timer, a one-way call the object sends itself with a delay when a
  window opens (or a session grows), due at the window's end + grace, naming the window
  [start, end]; emits the window if it is still open as such, and does nothing if it closed
  already or, a session, grew or merged since (its new extent has its own timer).
- `windows` (shared): the key's open windows and their current results, to look at.

Emissions go to a topic through the durable publisher, with an event id derived from the
binding, key, window and emission (the same whichever invocation emits it, so a consumer with
`dedupe: true` drops a duplicate), or to a handler as a one-way call.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Optional

import restate

from restate_stream.bindings import Binding
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.failures import DropRecord, RecordError, RejectedRecords
from restate_stream.runtime.publisher import Publisher
from restate_stream.windows.aggregate import Aggregation, WindowValueError, aggregation, field_value
from restate_stream.windows.assign import Added, KeyWindows, OpenWindow
from restate_stream.windows.reducer import Reducer
from restate_stream.windows.sessions import KeySessions
from restate_stream.windows.settings import WindowSpec
from restate_stream.windows.sliding import KeySliding

log = logging.getLogger("restate_stream.windows")

STATE = "windows"
ADD, CLOSE, PEEK = "add", "close", "windows"
RESULT_TYPE = "restate-stream.window"  # the CloudEvents type of an emitted window
LATE_RECORD = "LateRecord"
_IDS = uuid.UUID("8c1f6a52-3f0e-4d55-9a53-6f7c2b1e4d10")  # namespace of emission event ids


def _ms(duration: timedelta) -> int:
    return round(duration.total_seconds() * 1000)


def event_time_ms(event: KafkaEvent[Any], time_field: str | None) -> int:
    """The record's event time: its Kafka timestamp, or the value's `time_field` (epoch
    milliseconds, or an ISO-8601 date-time with a time zone)."""
    if time_field is None:
        if event.timestamp is None:
            raise RecordError("EventTimeError", "the record has no timestamp")
        return round(event.timestamp.timestamp() * 1000)
    try:
        written = field_value(event.value, time_field)
    except WindowValueError as exc:
        raise RecordError("EventTimeError", str(exc)) from None
    if isinstance(written, datetime):
        moment = written
    elif isinstance(written, int | float) and not isinstance(written, bool):
        return round(written)
    elif isinstance(written, str):
        try:
            moment = datetime.fromisoformat(written)
        except ValueError:
            moment = None
    else:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RecordError(
            "EventTimeError",
            f"field {time_field!r} is {written!r}; expected epoch milliseconds or an ISO-8601 "
            "date-time with a time zone",
        )
    return round(moment.timestamp() * 1000)


def window_result(key: str, o: OpenWindow, agg: Aggregation, final: bool) -> dict[str, Any]:
    """What is emitted for a window: its key, bounds (epoch ms), result and record count."""
    w = o.window
    value = agg.result(o.acc)
    return {
        "key": key,
        "start": w.start,
        "end": w.end,
        "value": value,
        "records": o.records,
        "final": final,
    }


def merged_result(key: str, gone: OpenWindow, into: OpenWindow) -> dict[str, Any]:
    """What `emit: current` emits for a session merged into another that starts earlier:
    its results so far are void; the session it became goes on under `merged_into`."""
    w = gone.window
    return {
        "key": key,
        "start": w.start,
        "end": w.end,
        "value": None,
        "records": 0,
        "final": True,
        "merged_into": [into.window.start, into.window.end],
    }


def emission_id(binding: str, key: str, o: OpenWindow, which: str) -> str:
    """The event id of an emission: the same for the same window and emission, whichever
    invocation emits it (`final`, `update-<n>` numbered by the window's updates, `merged`)."""
    name = f"{binding}\0{key}\0{o.window.start}\0{o.window.end}\0{which}"
    return str(uuid.uuid5(_IDS, name))


class WindowObject:
    """The object of one window binding (see the module docstring)."""

    def __init__(
        self,
        binding: Binding,
        publisher: Publisher,
        reducer: Reducer[Any, Any] | None,
        target_keyed: bool = True,
        target_workflow_run: bool = False,
    ) -> None:
        assert binding.window is not None
        self.binding = binding
        self.spec: WindowSpec = binding.window
        self.publisher = publisher
        self.aggregation = aggregation(self.spec.kind, self.spec.field, reducer)
        self.target_keyed = target_keyed  # to_handler names an object or workflow handler
        # to_handler names a workflow's run handler, which runs once per key: one per window.
        self.target_workflow_run = target_workflow_run
        self.service = restate.VirtualObject(binding.name)
        self._declare()

    def _load(self, data: dict[str, Any] | None) -> KeyWindows | KeySliding | KeySessions:
        s = self.spec
        length, grace = _ms(s.length), _ms(s.grace)
        if s.type == "session":
            return KeySessions.from_json(data, length, grace)
        if s.type == "sliding":
            return KeySliding.from_json(data, length, grace)
        return KeyWindows.from_json(data, length, _ms(s.hop), grace)

    def _declare(self) -> None:
        service, this = self.service, self

        batched = self.binding.batch is not None

        async def add(ctx: restate.ObjectContext, event: Any) -> None:
            await this.add(ctx, event if batched else [event])

        # The record's value is decoded into the reducer's type (bound.py reads this hint); a
        # batched binding's handler takes the list of one key's events.
        one = KafkaEvent[Optional[self.aggregation.value_type]]  # type: ignore[name-defined]  # noqa: UP045
        add.__annotations__ = {
            "ctx": restate.ObjectContext,
            "event": list[one] if batched else one,
            "return": None,
        }
        service.handler(ADD)(add)

        # The window a timer was set for: [start, end] (a bare start from timers set before
        # windows could grow).
        @service.handler(CLOSE)
        async def close(ctx: restate.ObjectContext, window: list[int] | int) -> None:
            await this.close(ctx, window)

        @service.handler(PEEK, kind="shared")
        async def windows(ctx: restate.ObjectSharedContext) -> list[dict[str, Any]]:
            state = this._load(await ctx.get(STATE, type_hint=dict[str, Any]))
            key = ctx.key()
            return [window_result(key, o, this.aggregation, False) for o in state.open.values()]

        self.close_handler = close

    async def add(self, ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None:
        """Fold the events (one, or a batch of one key's) into the key's windows, in order;
        set the timers of the windows they open, emit what closed (or changed), and write the
        state once. A batch's events that cannot be folded are rejected one by one."""
        state = self._load(await ctx.get(STATE, type_hint=dict[str, Any]))
        key = ctx.key()
        rejected: list[tuple[KafkaEvent[Any], RecordError | DropRecord]] = []
        changed = False
        for event in events:
            if event.value is None:
                continue  # a tombstone deletes nothing from a window: it is not counted
            try:
                added = self._fold(state, event)
            except (RecordError, DropRecord) as why:
                if self.binding.batch is None:
                    raise  # the bound handler dead-letters or drops its one record
                rejected.append((event, why))
                continue
            changed = True
            for window in added.opened:
                delay = timedelta(milliseconds=state.timer_delay_ms(window))
                due = [window.start, window.end]
                ctx.object_send(self.close_handler, key, due, send_delay=delay)
            for o in added.closed:
                if self.spec.emit == "final":
                    await self._emit(ctx, o, final=True)
            if self.spec.emit == "current":
                for gone in added.merged_away:
                    (into,) = added.updated
                    await self._send(ctx, gone, merged_result(key, gone, into), "merged")
                for o in added.updated:
                    await self._emit(ctx, o, final=False)
        if changed:
            ctx.set(STATE, state.to_json())
        if rejected:
            raise RejectedRecords(rejected)

    def _fold(self, state: KeyWindows | KeySliding | KeySessions, event: KafkaEvent[Any]) -> Added:
        """One event into the windows; RecordError or DropRecord (late) if it cannot go."""
        time_ms = event_time_ms(event, self.spec.time_field)
        try:
            added = state.add(time_ms, event.value, self.aggregation)
        except WindowValueError as exc:
            raise RecordError("WindowValueError", str(exc)) from None
        if added.late:
            message = (
                f"event time {time_ms} falls only in windows closed already (stream time "
                f"{state.stream_time}, grace {self.spec.grace.total_seconds():g}s)"
            )
            if self.spec.late == "dead_letter":
                raise RecordError(LATE_RECORD, message)
            raise DropRecord(LATE_RECORD, message)
        return added

    async def close(self, ctx: restate.ObjectContext, window: list[int] | int) -> None:
        state = self._load(await ctx.get(STATE, type_hint=dict[str, Any]))
        o = state.close(window) if isinstance(window, int) else state.close(*window)
        if o is None:
            return  # closed already (emitted once), or a session that grew: its own timer
        if self.spec.emit == "final":
            await self._emit(ctx, o, final=True)
        ctx.set(STATE, state.to_json())

    async def _emit(self, ctx: restate.ObjectContext, o: OpenWindow, final: bool) -> None:
        result = window_result(ctx.key(), o, self.aggregation, final)
        await self._send(ctx, o, result, "final" if final else f"update-{o.updates}")

    async def _send(
        self, ctx: restate.ObjectContext, o: OpenWindow, result: dict[str, Any], which: str
    ) -> None:
        key = ctx.key()
        if self.spec.to is not None:
            await self.publisher.publish(
                ctx,
                self.spec.to,
                key,
                result,
                event_type=RESULT_TYPE,
                event_id=emission_id(self.binding.name, key, o, which),
            )
        else:
            assert self.spec.to_handler is not None
            service, handler = self.spec.to_handler.split("/")
            body = json.dumps(result).encode()
            ctx.generic_send(service, handler, body, key=self.target_key(key, o))

    def target_key(self, key: str, o: OpenWindow) -> str | None:
        """The key of the object or workflow a window's result is sent to: the record key's,
        or for a workflow's run handler the window's own (`<key>@<start>-<end>`, epoch ms)."""
        if not self.target_keyed:
            return None
        if self.target_workflow_run:
            return f"{key}@{o.window.start}-{o.window.end}"
        return key

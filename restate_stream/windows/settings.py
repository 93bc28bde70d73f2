"""A binding's `window:` settings: their shape, defaults and the rules between them.

    window:
      type: tumbling          # or hopping (with advance:), sliding, session (with gap:)
      size: 1m                # not for session
      grace: 10s              # late records are accepted this long after a window's end
      time_field: placed_at   # event time from the value; absent: the record's timestamp
      aggregate: sum          # count (default), sum, min, max, mean, collect
      field: amount           # what sum/min/max/mean/collect take from each value
      emit: final             # once when the window closes; current: on every update
      to: order-totals        # a topic (or to_handler: Service/handler)
      late: drop              # or dead_letter (the binding's dead_letter topic)

Rules that need the rest of the binding (a dead-letter topic for `late: dead_letter`, no
`handler:`) are checked by the binding (bindings/schema.py); the reducer and the handler an
emission goes to are checked against the app (bindings/app_check.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, model_validator

from restate_stream.bindings.values import (
    AppRef,
    Duration,
    Expect,
    HandlerRef,
    SpecModel,
    Text,
    TopicName,
    parse_duration,
    rule,
)

WindowType = Literal["tumbling", "hopping", "sliding", "session"]
# Windows that combine partial aggregates: a reducer needs merge (reducer.py).
MERGING = frozenset({"sliding", "session"})
Aggregate = Literal["count", "sum", "min", "max", "mean", "collect"]
Emit = Literal["final", "current"]
Late = Literal["drop", "dead_letter"]

_MS = timedelta(milliseconds=1)
# A record of a hopping window goes into size/advance windows, each its own timer and result:
# bounded so one record cannot cost thousands of writes.
MAX_WINDOWS_PER_RECORD = 100
# A key's fixed windows open at once: up to (size + grace) / advance, all in its one state
# entry (read and written whole by every record): bounded so the entry stays small.
MAX_OPEN_WINDOWS = 10_000
# Aggregates that read a number (or a comparable value) from each record: they need `field:`.
NEEDS_FIELD = frozenset({"sum", "min", "max", "mean"})


def _grace(value: Any) -> Any:
    # Zero is a grace period too (a window closes at its end); a unit is still required.
    duration = value if isinstance(value, timedelta) else parse_duration(value)
    if duration is None or duration < timedelta(0):
        raise ValueError("not a duration")
    return duration


Grace = Annotated[
    timedelta,
    BeforeValidator(_grace),
    Expect("a duration with a unit, 0s or more, like 0s, 10s, 2m"),
]
FieldPath = Annotated[
    Text, Expect("a field of the record's value, dotted for nested ones, like amount or order.ts")
]


class WindowSpec(SpecModel, BaseModel):
    type: Annotated[WindowType, Expect('"tumbling", "hopping", "sliding" or "session"')]
    size: Duration | None = None  # None only for a session window
    advance: Duration | None = None  # hopping: how far apart window starts are
    gap: Duration | None = None  # session: the quiet time that ends a session
    grace: Grace = timedelta(0)
    time_field: FieldPath | None = None  # None: the Kafka record's timestamp
    aggregate: Annotated[Aggregate, Expect("one of count, sum, min, max, mean, collect")] | None = (
        None
    )
    field: FieldPath | None = None
    reducer: AppRef | None = None  # "module:attribute" naming a restate_stream.windows.Reducer
    emit: Annotated[Emit, Expect('"final" or "current"')] = "final"
    to: TopicName | None = None
    to_handler: HandlerRef | None = None
    late: Annotated[Late, Expect('"drop" or "dead_letter"')] = "drop"

    @model_validator(mode="after")
    def _consistent(self) -> WindowSpec:
        written = self.model_fields_set
        for name in ("size", "advance", "gap"):
            length: timedelta | None = getattr(self, name)
            # Windows count in whole milliseconds: 0.4ms would be a window of 0 (every
            # record failing its invocation), 1.5ms silently one of 2.
            if length is not None and (length < _MS or length % _MS):
                raise rule(f"{name} must be a whole number of milliseconds, 1ms or more", name)
        if self.type == "session":
            if self.gap is None:
                raise rule("a session window needs gap: (the quiet time that ends a session)")
            if self.size is not None:
                raise rule("a session window has no size: (it grows while records come)", "size")
        elif self.size is None:
            raise rule(f"a {self.type} window needs size:")
        elif "gap" in written:
            raise rule("gap applies only to type: session", "gap")
        if self.type == "hopping":
            if self.advance is None:
                raise rule("a hopping window needs advance: (how far apart windows start)")
            if self.size is not None and self.advance > self.size:
                raise rule(
                    "advance must not be longer than size (records would fall in no window)",
                    "advance",
                )
            if self.size is not None and self.size / self.advance > MAX_WINDOWS_PER_RECORD:
                raise rule(
                    f"size / advance is {self.size / self.advance:,.0f}: each record would go into "
                    f"that many windows; at most {MAX_WINDOWS_PER_RECORD} (a longer advance)",
                    "advance",
                )
        elif "advance" in written:
            raise rule(
                "advance applies only to type: hopping (tumbling windows advance by size)",
                "advance",
            )
        if self.type in ("tumbling", "hopping") and self.size is not None:
            open_at_once = (self.size + self.grace) / (self.advance or self.size)
            if open_at_once > MAX_OPEN_WINDOWS:
                raise rule(
                    f"(size + grace) / {'advance' if self.advance else 'size'} is "
                    f"{open_at_once:,.0f}: a key could hold that many open windows; at most "
                    f"{MAX_OPEN_WINDOWS:,} (a shorter grace or longer windows)",
                    "grace",
                )
        if self.reducer is not None and "aggregate" in written:
            raise rule("give either aggregate: or reducer:, not both", "reducer")
        if self.aggregate in NEEDS_FIELD and self.field is None:
            raise rule(
                f"aggregate: {self.aggregate} needs field: (the value to {self.aggregate})",
                "aggregate",
            )
        if self.field is not None and (self.reducer is not None or self.kind == "count"):
            raise rule(
                f"field applies to sum, min, max, mean and collect, not {self.kind}", "field"
            )
        if (self.to is None) == (self.to_handler is None):
            raise rule(
                "give exactly one of to: (a topic) or to_handler: (Service/handler), where "
                "the windows' results go"
            )
        return self

    @property
    def kind(self) -> str:
        """The aggregation: one of Aggregate, or "reducer"."""
        return "reducer" if self.reducer is not None else self.aggregate or "count"

    @property
    def length(self) -> timedelta:
        """The size of a fixed or sliding window, the gap of a session window."""
        length = self.gap if self.type == "session" else self.size
        assert length is not None  # _consistent
        return length

    @property
    def hop(self) -> timedelta:
        return self.advance if self.advance is not None else self.length

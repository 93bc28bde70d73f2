"""A user's own aggregation: an initial value and a function folding each record into it.

    @dataclass
    class Totals:
        orders: int = 0
        cents: int = 0

    def add(totals: Totals, order: Order) -> Totals:
        return Totals(totals.orders + 1, totals.cents + order.cents)

    order_totals = Reducer(initial=Totals, reduce=add)   # window: {reducer: "app:order_totals"}

The types come from `reduce`'s annotations: records are decoded into the second parameter's
type (as a handler's input is), and the running value is kept in the object's state as JSON of
the first parameter's type (a dataclass, a pydantic model, a dict, a number...).

Session and sliding windows combine partial results (a record that bridges two sessions merges
them): a reducer used there needs `merge(earlier, later) -> A` too.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import PydanticUserError, TypeAdapter

A = TypeVar("A")  # the running value
V = TypeVar("V")  # a record's value


@dataclass(frozen=True)
class Reducer(Generic[A, V]):
    initial: Callable[[], A]
    reduce: Callable[[A, V], A]
    merge: Callable[[A, A], A] | None = None  # needed by session and sliding windows

    def types(self) -> tuple[Any, Any]:
        """(the running value's type, a record value's type) from reduce's annotations;
        Any where one is not annotated."""
        params = list(inspect.signature(self.reduce).parameters)
        hints = typing.get_type_hints(self.reduce) if len(params) == 2 else {}
        return hints.get(params[0], Any), hints.get(params[1], Any)

    def adapters(self) -> tuple[TypeAdapter[Any], Any]:
        """(a JSON adapter of the running value, the record value's type)."""
        accumulated, value = self.types()
        return TypeAdapter(accumulated), value

    def problem(self) -> str | None:
        """Why this reducer cannot be used, in words; None if it can."""
        if not callable(self.initial) or not callable(self.reduce):
            return "initial and reduce must be callables (initial() -> A, reduce(A, V) -> A)"
        if self.merge is not None and not callable(self.merge):
            return "merge must be a callable (merge(A, A) -> A)"
        if len(inspect.signature(self.reduce).parameters) != 2:
            return "reduce must take two parameters: the running value and a record's value"
        try:
            accumulated, _ = self.types()
        except (NameError, TypeError) as exc:
            return f"the annotations of reduce cannot be resolved: {exc}"
        try:
            TypeAdapter(accumulated)  # the window object builds it to keep the value in state
        except PydanticUserError:
            return (
                f"the running value's type {getattr(accumulated, '__name__', accumulated)} "
                "cannot be kept as JSON (use a dataclass, a pydantic model, a dict, a number...)"
            )
        return None

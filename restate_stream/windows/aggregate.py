"""Aggregations of a window, as pure functions of JSON values (what object state holds).

Each aggregation starts from `initial()`, folds a record's value in with `add(acc, value)`
and reads the window's result with `result(acc)`; the accumulator is JSON so that it can sit
in Restate state between invocations. `merge(earlier, later)` combines two accumulators (of
sessions a record bridges, of the pieces of a sliding window); a reducer may lack it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter

from restate_stream.runtime.formats import to_jsonable
from restate_stream.windows.reducer import Reducer


class WindowValueError(ValueError):
    """A record's value lacks what the window needs (its field, a number): the record is
    dead-lettered (or dropped) with this message."""


class Aggregation(Protocol):
    @property
    def value_type(self) -> Any: ...  # what each record's value is decoded into

    def initial(self) -> Any: ...

    def add(self, acc: Any, value: Any) -> Any: ...

    def result(self, acc: Any) -> Any: ...

    def merge(self, earlier: Any, later: Any) -> Any: ...


def field_value(value: Any, path: str | None) -> Any:
    """`value`'s field at dotted `path` (mapping keys or attributes); `value` when None."""
    if path is None:
        return value
    current = value
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif not isinstance(current, dict) and hasattr(current, part):
            current = getattr(current, part)
        else:
            raise WindowValueError(f"the value has no field {path!r}")
    return current


def _number(value: Any, path: str | None) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WindowValueError(f"field {path!r} is {value!r}, not a number")
    return value


@dataclass(frozen=True)
class Count:
    value_type: Any = Any

    def initial(self) -> int:
        return 0

    def add(self, acc: int, value: Any) -> int:
        return acc + 1

    def result(self, acc: int) -> int:
        return acc

    def merge(self, earlier: int, later: int) -> int:
        return earlier + later


@dataclass(frozen=True)
class Sum:
    field: str
    value_type: Any = Any

    def initial(self) -> float | int:
        return 0

    def add(self, acc: float | int, value: Any) -> float | int:
        return acc + _number(field_value(value, self.field), self.field)

    def result(self, acc: float | int) -> float | int:
        return acc

    def merge(self, earlier: float | int, later: float | int) -> float | int:
        return earlier + later


@dataclass(frozen=True)
class Extreme:
    """min or max of a numeric field; None for a window without records (never emitted)."""

    field: str
    largest: bool
    value_type: Any = Any

    def initial(self) -> float | int | None:
        return None

    def add(self, acc: float | int | None, value: Any) -> float | int:
        number = _number(field_value(value, self.field), self.field)
        if acc is None:
            return number
        return max(acc, number) if self.largest else min(acc, number)

    def result(self, acc: float | int | None) -> float | int | None:
        return acc

    def merge(self, earlier: float | int | None, later: float | int | None) -> float | int | None:
        if earlier is None or later is None:
            return later if earlier is None else earlier
        return max(earlier, later) if self.largest else min(earlier, later)


@dataclass(frozen=True)
class Mean:
    field: str
    value_type: Any = Any

    def initial(self) -> dict[str, float | int]:
        return {"sum": 0, "count": 0}

    def add(self, acc: dict[str, float | int], value: Any) -> dict[str, float | int]:
        number = _number(field_value(value, self.field), self.field)
        return {"sum": acc["sum"] + number, "count": acc["count"] + 1}

    def result(self, acc: dict[str, float | int]) -> float | None:
        return acc["sum"] / acc["count"] if acc["count"] else None

    def merge(
        self, earlier: dict[str, float | int], later: dict[str, float | int]
    ) -> dict[str, float | int]:
        return {"sum": earlier["sum"] + later["sum"], "count": earlier["count"] + later["count"]}


@dataclass(frozen=True)
class Collect:
    field: str | None
    value_type: Any = Any

    def initial(self) -> list[Any]:
        return []

    def add(self, acc: list[Any], value: Any) -> list[Any]:
        return [*acc, to_jsonable(field_value(value, self.field))]

    def result(self, acc: list[Any]) -> list[Any]:
        return acc

    def merge(self, earlier: list[Any], later: list[Any]) -> list[Any]:
        return [*earlier, *later]


class Reduced:
    """A user's Reducer: the running value kept as JSON of its declared type."""

    def __init__(self, reducer: Reducer[Any, Any]) -> None:
        self.reducer = reducer
        self.adapter: TypeAdapter[Any]
        self.adapter, self.value_type = reducer.adapters()

    def _dump(self, value: Any) -> Any:
        return self.adapter.dump_python(value, mode="json")

    def initial(self) -> Any:
        return self._dump(self.reducer.initial())

    def add(self, acc: Any, value: Any) -> Any:
        return self._dump(self.reducer.reduce(self.adapter.validate_python(acc), value))

    def result(self, acc: Any) -> Any:
        return acc

    def merge(self, earlier: Any, later: Any) -> Any:
        merge = self.reducer.merge
        assert merge is not None  # app_check refuses a reducer without merge where it is needed
        load = self.adapter.validate_python
        return self._dump(merge(load(earlier), load(later)))


def aggregation(kind: str, field: str | None, reducer: Reducer[Any, Any] | None) -> Aggregation:
    """The aggregation a window's settings name (WindowSpec.kind and .field)."""
    if kind == "reducer":
        assert reducer is not None
        return Reduced(reducer)
    if kind == "count":
        return Count()
    if kind == "collect":
        return Collect(field)
    assert field is not None  # settings.NEEDS_FIELD
    if kind == "sum":
        return Sum(field)
    if kind == "mean":
        return Mean(field)
    return Extreme(field, largest=kind == "max")

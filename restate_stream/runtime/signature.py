"""What a bound handler's input may be, decided once.

A per-record bound handler (runtime/bound.py) takes `event: KafkaEvent[T]` (the value with its
record's metadata) or `value: T` (the value alone, so a plain handler binds unchanged); a
batched one (batch/handler.py) takes `events: list[KafkaEvent[T]]` or `values: list[T]` (the
values alone: no event is built per record). A hint admitting None
(`T | None`, `Any`) receives tombstones as the value None. Both wrappers and the check against
the app (bindings/app_check.py) read the hint through `handler_input` / `input_problem`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from restate_stream.errors import ConfigurationError
from restate_stream.runtime.event import KafkaEvent

# How a batched handler must declare its input (quoted by the errors that refuse another).
BATCH_INPUT = "`events: list[KafkaEvent[T]]` or `values: list[T]`"


class HandlerSignatureError(ConfigurationError, ValueError):
    """A bound handler's input hint does not fit its binding (a batched one takes a list)."""


@dataclass(frozen=True)
class HandlerInput:
    """What a handler's input parameter asks for."""

    value_type: Any  # what a record's non-null value is decoded into (T of `T | None`)
    takes_none: bool  # the hint admits None: a tombstone is delivered as the value None
    wants_event: bool  # a KafkaEvent (or a list of them), not the bare value (or values)


def handler_input(fn: Callable[..., Any], *, batched: bool) -> HandlerInput | None:
    """The input `fn` declares for a per-record or a `batched` binding; None if a batched
    handler's input is not a list (`input_problem` words it)."""
    if batched:
        is_list, item = _batch_item(fn)
        if not is_list:
            return None
        declared, wants_event = _item_type(item)
    else:
        declared, wants_event = input_type_of(fn)
    return HandlerInput(without_none(declared), admits_none(declared), wants_event)


def input_problem(fn: Callable[..., Any], *, batched: bool) -> str | None:
    """Why `fn` cannot be bound as declared (what its input must be), or None."""
    if handler_input(fn, batched=batched) is None:
        return f"its input must be declared {BATCH_INPUT}"
    return None


def input_type_of(fn: Callable[..., Any]) -> tuple[Any, bool]:
    """(value type, whether the handler takes a KafkaEvent) from the input parameter's hint."""
    params = list(inspect.signature(fn).parameters)
    if len(params) < 2:
        return Any, True
    # By name: get_type_hints leaves out parameters without annotations (often `ctx`).
    hint = typing.get_type_hints(fn).get(params[1], Any)
    if hint is KafkaEvent:
        return Any, True
    if typing.get_origin(hint) is KafkaEvent:
        (value_type,) = typing.get_args(hint)
        return value_type, True
    return hint, False


def admits_none(value_type: Any) -> bool:
    """Whether a handler declaring `value_type` can be given None (a tombstone's value)."""
    if value_type is Any or value_type is None or value_type is type(None) or value_type is object:
        return True
    if typing.get_origin(value_type) in (typing.Union, types.UnionType):
        return any(admits_none(arg) for arg in typing.get_args(value_type))
    return False


def without_none(value_type: Any) -> Any:
    """`T` for `T | None`: what a non-null value is decoded into."""
    if typing.get_origin(value_type) not in (typing.Union, types.UnionType):
        return value_type
    rest = [arg for arg in typing.get_args(value_type) if arg is not type(None)]
    if len(rest) == len(typing.get_args(value_type)):
        return value_type
    return typing.Union[tuple(rest)] if len(rest) > 1 else rest[0]  # noqa: UP007


def _batch_item(fn: Callable[..., Any]) -> tuple[bool, Any]:
    """(whether the input hint is `list[X]`, X) for a batched handler."""
    params = list(inspect.signature(fn).parameters)
    if len(params) < 2:
        return False, None
    hint = typing.get_type_hints(fn).get(params[1])
    if typing.get_origin(hint) is not list or not typing.get_args(hint):
        return False, None
    (item,) = typing.get_args(hint)
    return True, item


def _item_type(item: Any) -> tuple[Any, bool]:
    """(T, whether the items are events) for a batched handler's `list[KafkaEvent[T]]` or
    `list[T]`."""
    if item is KafkaEvent:
        return Any, True
    if typing.get_origin(item) is KafkaEvent:
        return typing.get_args(item)[0], True
    return item, False


def batch_value_type(fn: Callable[..., Any]) -> tuple[bool, Any]:
    """(whether the input is `list[KafkaEvent[T]]` or `list[T]`, T) from the handler's input
    hint."""
    is_list, item = _batch_item(fn)
    return (True, _item_type(item)[0]) if is_list else (False, None)

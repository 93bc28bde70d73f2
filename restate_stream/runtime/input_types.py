"""What a handler's input hint asks for: the value type, the event, a list of events, None.

Shared by the per-record wrapper (runtime/bound.py), the batched one (batch/handler.py) and the
checks against the app (bindings/app_check.py), which all read the same hints.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from restate_stream.runtime.event import KafkaEvent


def input_type_of(fn: Callable[..., Any]) -> tuple[Any, bool]:
    """(value type, whether the handler takes a KafkaEvent) from the input parameter's hint.

    `event: KafkaEvent[T]` gets the event with its metadata; `value: T` gets the decoded value
    alone, so a plain handler can be bound without changing its signature.
    """
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


def batch_value_type(fn: Callable[..., Any]) -> tuple[bool, Any]:
    """(whether the input is `list[KafkaEvent[T]]`, T) from the handler's input hint."""
    params = list(inspect.signature(fn).parameters)
    if len(params) < 2:
        return False, None
    hint = typing.get_type_hints(fn).get(params[1])
    if typing.get_origin(hint) is not list:
        return False, None
    (item,) = typing.get_args(hint) or (None,)
    if item is KafkaEvent:
        return True, Any
    if typing.get_origin(item) is KafkaEvent:
        return True, typing.get_args(item)[0]
    return False, None

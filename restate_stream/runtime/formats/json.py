"""JSON values, decoded into the handler's declared type.

A pydantic model, a dataclass (field types checked), or plain JSON for `dict`/`list`/`Any`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Literal

import orjson
import pydantic

from restate_stream.runtime.formats.base import DecodeError, EncodeError

# No JSON parsed ahead (None is a parsed JSON null): a value the caller has not parsed yet.
UNPARSED: Any = object()


@functools.cache
def _adapter(t: type) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(t)


def parse_json(data: bytes) -> Any:
    """JSON as the json module reads it, at orjson's speed: what orjson refuses (NaN,
    integers beyond 64 bits, invalid input) is read again by json, which also words the
    error."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # pydantic v2
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


_PLAIN = (dict, list, str, int, float, bool)


class JsonCodec:
    def __init__(self, value_type: Any = None) -> None:
        self.value_type = value_type
        # How to convert, decided once, not per record: `hasattr` on a generic alias such as
        # dict[str, Any] (no conversion) raises and catches an AttributeError inside, ~10% of
        # a batched record's worker CPU (py-spy over benchmarks/e2e_throughput.py).
        t = value_type
        self._kind: Literal["any", "plain", "model", "dataclass"] = "any"
        if t in _PLAIN:
            self._kind = "plain"
        elif t is not None and t is not Any and hasattr(t, "model_validate"):
            self._kind = "model"
        elif isinstance(t, type) and dataclasses.is_dataclass(t):
            self._kind = "dataclass"
        # The type a parsed value has when `convert` returns it as it is (`object`: any
        # type); None when it converts. A batch checks this per record instead of calling.
        self.unconverted: type | None = {"any": object, "plain": t}.get(self._kind)

    def parse(self, data: bytes) -> Any:
        return parse_json(data)

    def convert(self, obj: Any) -> Any:
        """Turn parsed JSON into the declared type."""
        kind, t = self._kind, self.value_type
        if kind == "any":
            return obj
        if kind == "plain":
            if not isinstance(obj, t):
                raise DecodeError(f"expected a JSON {t.__name__}, got {type(obj).__name__}")
            return obj
        if kind == "model":
            try:
                return t.model_validate(obj)
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                raise DecodeError(f"does not match {t.__name__}: {exc}") from exc
        if not isinstance(obj, dict):
            raise DecodeError(f"expected a JSON object for {t.__name__}")
        try:
            # Field types are checked (a str where the dataclass says int is bad data,
            # found here and dead-lettered, not a TypeError deep in the handler).
            return _adapter(t).validate_python(obj)
        except pydantic.ValidationError as exc:
            raise DecodeError(f"does not match {t.__name__}: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        return self.convert(self.parse(data))

    def encode(self, value: Any) -> bytes:
        return json_text(value).encode()


def json_text(value: Any) -> str:
    """Compact JSON for `value` (pydantic models and dataclasses included), or EncodeError."""
    try:
        return json.dumps(to_jsonable(value), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"not JSON-serialisable: {exc}") from exc

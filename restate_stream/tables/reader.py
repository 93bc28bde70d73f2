"""Table: a typed reader of a table binding, for any handler."""

from __future__ import annotations

from typing import Any, Generic, Optional, TypeVar

import restate
from pydantic import TypeAdapter

from restate_stream.tables.objects import GET

T = TypeVar("T")


class Table(Generic[T]):
    """A typed reader of table binding `name`: `await table.get(ctx, key)` calls the table's
    shared `get` handler (a durable call, journaled like any other) and decodes its value."""

    def __init__(self, name: str, value_type: type[T] | Any = Any) -> None:
        self.name = name
        self._adapter: TypeAdapter[T | None] = TypeAdapter(
            Optional[value_type]  # type: ignore[arg-type]  # noqa: UP045
        )

    async def get(self, ctx: restate.Context, key: str) -> T | None:
        raw = await ctx.generic_call(self.name, GET, b"", key=key)
        return self._adapter.validate_json(raw) if raw else None

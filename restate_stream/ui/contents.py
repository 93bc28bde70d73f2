"""What a table or window binding holds, for its page: read through Restate, bounded.

A table's rows come from Restate's SQL over object state (`POST /query` on the admin API): the
table object's `value` entry per key, at most `limit` keys in key order, and how many there are.
A window binding's open windows come from its object's shared `windows` handler, called through
the ingress for at most `limit` keys (found the same way): the handler computes each window's
current result (a mean, a reducer's value) as an emission would, so the page needs no app code.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from connectors.secrets import redact_url, split_userinfo
from restate_stream._util.text import one_line
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.errors import RestateServerError
from restate_stream.tables.objects import VALUE
from restate_stream.windows.objects import PEEK, STATE

VALUE_WIDTH = 300  # characters of a value shown
CALLS_AT_ONCE = 8  # ingress calls in flight for one page


class ContentsError(RestateServerError):
    """A table's rows or a window's open windows could not be read (said on the page)."""


@dataclass(frozen=True)
class TableRow:
    key: str
    value: str  # the value's JSON, shortened to VALUE_WIDTH


@dataclass(frozen=True)
class WindowRow:
    key: str
    start: int  # epoch ms
    end: int  # epoch ms, exclusive
    value: str  # the current result's JSON, shortened to VALUE_WIDTH
    records: int


@dataclass(frozen=True)
class Contents:
    """Up to `limit` keys of a binding's object, and how many keys hold state in all."""

    keys: int
    table: list[TableRow]
    windows: list[WindowRow]


def _where(service: str, state_key: str) -> str:
    return f"service_name = {sql_literal(service)} AND key = {sql_literal(state_key)}"


async def _keyed_state(
    admin: AdminClient, service: str, state_key: str, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many keys of `service` hold `state_key`, the first `limit` of them with it)."""
    where = _where(service, state_key)
    counted = await admin.query(f"SELECT COUNT(*) AS n FROM state WHERE {where}")
    rows = await admin.query(
        f"SELECT service_key, value_utf8 FROM state WHERE {where} "
        f"ORDER BY service_key LIMIT {int(limit)}"
    )
    return int(counted[0]["n"]) if counted else 0, rows


async def table_contents(admin: AdminClient, binding: str, limit: int) -> Contents:
    total, rows = await _keyed_state(admin, binding, VALUE, limit)
    table = [TableRow(r["service_key"], one_line(r["value_utf8"], VALUE_WIDTH)) for r in rows]
    return Contents(total, table, [])


async def window_contents(
    admin: AdminClient, ingress_url: str, binding: str, limit: int
) -> Contents:
    total, rows = await _keyed_state(admin, binding, STATE, limit)
    base, credentials = split_userinfo(ingress_url)
    gate = asyncio.Semaphore(CALLS_AT_ONCE)

    async def peek(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
        path = f"/{quote(binding, safe='')}/{quote(key, safe='')}/{PEEK}"
        async with gate:
            try:
                response = await client.post(path)
                response.raise_for_status()
                found: list[dict[str, Any]] = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ContentsError(
                    f"{binding}: reading key {key!r}'s windows through the ingress at "
                    f"{redact_url(ingress_url)} failed: {one_line(redact_url(str(exc)), 300)}"
                ) from None
        return found

    async with httpx.AsyncClient(base_url=base, auth=credentials, timeout=10.0) as client:
        keys = [r["service_key"] for r in rows]
        per_key = await asyncio.gather(*(peek(client, key) for key in keys))
    windows = [
        WindowRow(
            w["key"], w["start"], w["end"], one_line(_json(w["value"]), VALUE_WIDTH), w["records"]
        )
        for found in per_key
        for w in found
    ]
    return Contents(total, [], windows)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

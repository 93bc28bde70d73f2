"""A topic's last records, as `restate-stream tail --last N` reads them; an envelope is shown
as its event id and data."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from connectors.consume import ConsumedRecord
from restate_stream._util.text import one_line
from restate_stream.bindings import BindingsFile
from restate_stream.errors import RestateStreamError, describe
from restate_stream.runtime.formats import unwrap_cloudevent
from restate_stream.ui.context import dashboard

DEFAULT_LAST = 20  # per partition, as tail's --last
WIDTH = 400  # characters of a value shown


@dataclass(frozen=True)
class RecordView:
    partition: int
    offset: int
    key: str | None
    event_id: str | None  # set: the value is a CloudEvents envelope, `value` its data
    value: str


def record_view(record: ConsumedRecord) -> RecordView:
    key = None if record.key is None else record.key.decode("utf-8", "replace")
    raw = record.value or b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = f"base64:{base64.b64encode(raw).decode()}"
        return RecordView(record.partition, record.offset, key, None, one_line(shown, WIDTH))
    event_id = None
    try:
        data, event_id, _ = unwrap_cloudevent(json.loads(text))
    except ValueError:
        pass
    else:
        if event_id is not None:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return RecordView(record.partition, record.offset, key, event_id, one_line(text, WIDTH))


def declared_topics(spec: BindingsFile) -> set[str]:
    """The topics the bindings file names: under `topics:`, and each binding's source,
    dead-letter and window results topics. The page reads no other (it reads with the file's
    credentials)."""
    named = set(spec.topics)
    for binding in spec.bindings:
        named.add(binding.topic)
        if binding.dead_letter is not None:
            named.add(binding.dead_letter)
        if binding.window is not None and binding.window.to is not None:
            named.add(binding.window.to)
    return named


async def topic_page(request: Request) -> Response:
    board = dashboard(request)
    topic = request.path_params["topic"]
    if topic not in declared_topics(board.source.spec()):
        raise HTTPException(404, f"the bindings file names no topic {topic!r}")
    try:
        last = min(max(int(request.query_params.get("last", DEFAULT_LAST)), 1), 1000)
    except ValueError:
        last = DEFAULT_LAST
    error = None
    records: list[RecordView] = []
    try:
        records = [record_view(r) for r in await board.source.tail(topic, last)]
    except (RestateStreamError, ConnectionError, TimeoutError) as exc:
        error = describe(exc)
    records.sort(key=lambda r: (r.partition, r.offset))
    return board.render(request, "topic.html", topic=topic, last=last, records=records, error=error)

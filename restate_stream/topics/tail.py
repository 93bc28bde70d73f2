"""`restate-stream tail TOPIC`: show a topic's records, for people checking what landed.

Reads without a consumer group (nothing is committed), from the beginning or the last N
per partition, and with --follow keeps polling for new records until Ctrl-C. Values are
shown as text (CloudEvents envelopes unwrapped to their data and id), else as base64.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

from connectors.consume import ConsumedRecord, end_offsets, read_topic
from restate_stream.runtime.formats import unwrap_cloudevent
from restate_stream.topics.publish import Target

WIDTH = 160


def render(record: ConsumedRecord) -> str:
    key = record.key.decode("utf-8", "replace") if record.key is not None else "-"
    value = record.value or b""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        shown = f"base64:{base64.b64encode(value).decode()}"
    else:
        shown = text
        try:
            data, event_id, _ = unwrap_cloudevent(json.loads(text))
        except ValueError:
            pass
        else:
            if event_id is not None:
                shown = f"[event {event_id}] {json.dumps(data, separators=(',', ':'))}"
    if len(shown) > WIDTH:
        shown = shown[: WIDTH - 1] + "…"
    return f"p{record.partition}@{record.offset}  key={key}  {shown}"


def tail(
    target: Target,
    *,
    last: int | None,
    follow: bool,
    say: Callable[[str], None] = print,
    poll_interval: float = 0.5,
) -> int:
    """Print the records; returns how many were printed (until Ctrl-C with follow)."""
    start: dict[int, int] | None = None
    if last is not None:
        ends = end_offsets(target.properties, target.topic)
        start = {p: max(end - last, 0) for p, end in ends.items()}
    shown = 0
    try:
        while True:
            records = read_topic(target.properties, target.topic, start=start)
            for record in records:
                say(render(record))
            shown += len(records)
            if not follow:
                return shown
            # Next round: from after what was shown, per partition.
            position = dict(start or {})
            for record in records:
                position[record.partition] = record.offset + 1
            start = position or {p: 0 for p in end_offsets(target.properties, target.topic)}
            time.sleep(poll_interval)
    except KeyboardInterrupt:
        return shown

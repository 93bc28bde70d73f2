"""CloudEvents 1.0 structured mode: the envelope that carries an event id with its data.

Restate does not forward Kafka record headers, so the id travels inside the value.
"""

from __future__ import annotations

import json
from typing import Any

from restate_stream.runtime.formats.json import json_text

CLOUDEVENTS_SPEC = "1.0"
# The attribute every envelope has: a dict without it is never one (a cheap first test).
ENVELOPE_MARK = "specversion"


def cloudevent(event_id: str, event_type: str, source: str, time: str, data: Any) -> bytes:
    """A CloudEvents 1.0 structured-mode JSON envelope around `data`."""
    return cloudevent_json(event_id, event_type, source, time, json_text(data))


def cloudevent_json(
    event_id: str,
    event_type: str,
    source: str,
    time: str,
    data: str,
    traceparent: str | None = None,
) -> bytes:
    """The envelope around `data` already encoded as JSON text (encoded once, checked early).
    `traceparent` is the distributed-tracing extension's attribute (W3C trace context)."""
    head = {
        ENVELOPE_MARK: CLOUDEVENTS_SPEC,
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time,
        "datacontenttype": "application/json",
    }
    if traceparent is not None:
        head["traceparent"] = traceparent
    return (json.dumps(head, separators=(",", ":"))[:-1] + ',"data":' + data + "}").encode()


def unwrap_cloudevent(obj: Any) -> tuple[Any, str | None, str | None]:
    """(data, id, type) of a CloudEvents envelope; (obj, None, None) for anything else."""
    if isinstance(obj, dict) and obj.get(ENVELOPE_MARK) == CLOUDEVENTS_SPEC and "id" in obj:
        return obj.get("data"), str(obj["id"]), obj.get("type")
    return obj, None, None


def envelope_traceparent(obj: Any) -> str | None:
    """The distributed-tracing extension's traceparent of a parsed envelope, if any."""
    if isinstance(obj, dict) and obj.get(ENVELOPE_MARK) == CLOUDEVENTS_SPEC:
        value = obj.get("traceparent")
        return value if isinstance(value, str) else None
    return None

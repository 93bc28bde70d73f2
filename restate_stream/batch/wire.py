"""The invocation body of a batched binding: many records of one object key, as JSON.

    {"v": 1, "records": [{"t": topic, "p": partition, "o": offset, "ts": millis | null,
                          "k": key base64 | null, "v": value base64 | null,
                          "h": [[header name, value base64 | null], ...]}, ...]}

JSON (not a binary format) so that a body can be read in Restate's UI and `restate
invocations describe`; base64 because keys, values and headers are bytes. Records are in the
order they were read: per source partition, ascending offsets.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from restate_stream.runtime.event import Headers

VERSION = 1


class WireError(ValueError):
    pass


@dataclass(frozen=True)
class WireRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @property
    def source(self) -> tuple[str, int]:
        return (self.topic, self.partition)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise WireError(f"{what}: expected base64 text or null, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what}: invalid base64: {exc}") from exc


def encode_batch(records: list[WireRecord]) -> bytes:
    return json.dumps(
        {
            "v": VERSION,
            "records": [
                {
                    "t": r.topic,
                    "p": r.partition,
                    "o": r.offset,
                    "ts": r.timestamp_ms,
                    "k": _b64(r.key),
                    "v": _b64(r.value),
                    "h": [[name, _b64(value)] for name, value in r.headers],
                }
                for r in records
            ],
        },
        separators=(",", ":"),
    ).encode()


def decode_batch(body: bytes) -> list[WireRecord]:
    """The records of a batch body; WireError naming the record and field if malformed."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"batch body is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise WireError(f'batch body: expected {{"v": {VERSION}, "records": [...]}}')
    if not isinstance(doc.get("records"), list):
        raise WireError(f'batch body: expected {{"v": {VERSION}, "records": [...]}}')
    out: list[WireRecord] = []
    for i, r in enumerate(doc["records"]):
        where = f"records[{i}]"
        if not isinstance(r, dict):
            raise WireError(f"{where}: expected an object")
        topic, partition, offset, ts = r.get("t"), r.get("p"), r.get("o"), r.get("ts")
        if not (isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int)):
            raise WireError(f"{where}: expected t (topic), p (partition) and o (offset)")
        if ts is not None and not isinstance(ts, int):
            raise WireError(f"{where}.ts: expected milliseconds or null")
        headers = r.get("h") or []
        if not isinstance(headers, list) or not all(
            isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) for h in headers
        ):
            raise WireError(f"{where}.h: expected [[name, base64 | null], ...]")
        out.append(
            WireRecord(
                topic,
                partition,
                offset,
                ts,
                _unb64(r.get("k"), f"{where}.k"),
                _unb64(r.get("v"), f"{where}.v"),
                tuple((name, _unb64(value, f"{where}.h")) for name, value in headers),
            )
        )
    return out

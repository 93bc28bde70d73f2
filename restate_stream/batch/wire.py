"""The invocation body of a batched binding: many records of one object key, as JSON.

    {"v": 1, "records": [{"t": topic, "p": partition, "o": offset, "ts": millis | null,
                          "k": key base64 | null, "v": value base64 | null,
                          "h": [[header name, value base64 | null], ...]}, ...]}

JSON (not a binary format) so that a body can be read in Restate's UI and `restate
invocations describe`; base64 because keys, values and headers are bytes. Records are in the
order they were read: per source partition, ascending offsets.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import orjson

from restate_stream.runtime.event import Headers

VERSION = 1


class WireError(ValueError):
    pass


class WireRecord(NamedTuple):
    """One record of a body (a tuple: decoding builds one per record, cheaply)."""

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


# binascii directly, not the base64 module's wrappers: the body's per-record cost is most of
# what a batched record costs the client and the worker (benchmarks/batch_ingress.py).
_to_b64 = binascii.b2a_base64
_from_b64 = binascii.a2b_base64


def _b64(data: bytes | None) -> str | None:
    return None if data is None else _to_b64(data, newline=False).decode("ascii")


def _unb64(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise WireError(f"{what}: expected base64 text or null, got {type(text).__name__}")
    try:
        return _from_b64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what}: invalid base64: {exc}") from exc


class EncodableRecord(Protocol):
    """What `encode_batch` reads of a record (WireRecord, the consumer's PolledRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp_ms(self) -> int | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


def _b64_json(data: bytes | None) -> bytes:
    return b"null" if data is None else b'"%b"' % _to_b64(data, newline=False)


def encode_batch(records: Sequence[EncodableRecord]) -> bytes:
    """The body, written directly as bytes (json.dumps of one dict per record was most of
    the client's CPU per record; bytes formatting spares a str and its encoding per record);
    json.dumps only for what may need escaping (topic and header names). Base64 and integers
    are JSON as they are."""
    topics: dict[str, bytes] = {}
    parts: list[bytes] = []
    append = parts.append
    for r in records:
        topic = topics.get(r.topic)
        if topic is None:
            topic = topics[r.topic] = json.dumps(r.topic).encode()
        ts = r.timestamp_ms
        headers = (
            json.dumps(
                [[name, _b64(value)] for name, value in r.headers], separators=(",", ":")
            ).encode()
            if r.headers
            else b"[]"
        )
        append(
            b'{"t":%b,"p":%d,"o":%d,"ts":%b,"k":%b,"v":%b,"h":%b}'
            % (
                topic,
                r.partition,
                r.offset,
                b"null" if ts is None else b"%d" % ts,
                _b64_json(r.key),
                _b64_json(r.value),
                headers,
            )
        )
    return b'{"v":%d,"records":[%b]}' % (VERSION, b",".join(parts))


def decode_batch(body: bytes) -> list[WireRecord]:
    """The records of a batch body; WireError naming the record and field if malformed."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"batch body is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise WireError(f'batch body: expected {{"v": {VERSION}, "records": [...]}}')
    if not isinstance(doc.get("records"), list):
        raise WireError(f'batch body: expected {{"v": {VERSION}, "records": [...]}}')
    out: list[WireRecord] = []
    append = out.append
    for i, r in enumerate(doc["records"]):
        if type(r) is not dict:
            raise WireError(f"records[{i}]: expected an object")
        get = r.get
        topic, partition, offset, ts = get("t"), get("p"), get("o"), get("ts")
        if not (type(topic) is str and type(partition) is int and type(offset) is int):
            raise WireError(f"records[{i}]: expected t (topic), p (partition) and o (offset)")
        if ts is not None and type(ts) is not int:
            raise WireError(f"records[{i}].ts: expected milliseconds or null")
        key, value, headers = get("k"), get("v"), get("h")
        try:
            # The fast path: the field names are worded only for an error (below).
            k = None if key is None else _from_b64(key, strict_mode=True)
            v = None if value is None else _from_b64(value, strict_mode=True)
        except (binascii.Error, ValueError, TypeError):
            k = _unb64(key, f"records[{i}].k")
            v = _unb64(value, f"records[{i}].v")
        append(
            WireRecord(topic, partition, offset, ts, k, v, _headers(headers, i) if headers else ())
        )
    return out


def _headers(headers: Any, i: int) -> Headers:
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) for h in headers
    ):
        raise WireError(f"records[{i}].h: expected [[name, base64 | null], ...]")
    return tuple((name, _unb64(value, f"records[{i}].h")) for name, value in headers)

"""KafkaEvent: what a bound handler receives instead of raw bytes.

Restate passes a Kafka record's value as the invocation body and its coordinates as
invocation headers (`kafka.topic`, `kafka.partition`, `kafka.offset`, `kafka.timestamp`,
`kafka.key` base64, `restate.subscription.id`); record headers are not forwarded, which is
why published events carry their id inside a CloudEvents envelope. KafkaCoordinates owns that
header contract both ways: `from_headers` (the bound handler) and `to_headers` (`dlq redrive`,
which hands a record back to its handler as the subscription would have). Bindings delivered
by restate-stream's own consumer (restate_stream.batch) read Kafka themselves, so their events
also carry the record headers (a per-record send: in RECORD_HEADERS_HEADER).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from restate_stream.errors import RecordFormatError

T = TypeVar("T")
_F = TypeVar("_F")

# Object keys of records whose key is not UTF-8 text (or starts with this prefix itself):
# the prefix and the key bytes in base64. Injective, so two keys never share an object.
BINARY_KEY_PREFIX = "b64:"

Headers = tuple[tuple[str, bytes | None], ...]

# A per-record send's Kafka record headers: JSON [[name, value base64 | null], ...], ASCII.
RECORD_HEADERS_HEADER = "restate-stream.record-headers"


def encode_record_headers(headers: Headers) -> str:
    pairs = [[n, None if v is None else base64.b64encode(v).decode("ascii")] for n, v in headers]
    return json.dumps(pairs, separators=(",", ":"))


def decode_record_headers(text: str | None) -> Headers:
    """The headers `encode_record_headers` wrote; () for none or anything else (it is
    metadata: a malformed value must not fail the record)."""
    if not text:
        return ()
    try:
        pairs = json.loads(text)
        return tuple(
            (str(n), None if v is None else base64.b64decode(v, validate=True)) for n, v in pairs
        )
    except (ValueError, TypeError, binascii.Error):
        return ()


def object_key_for(key: bytes | None) -> str:
    """The Restate object key for a Kafka record key (keyless records share the key "")."""
    if key is None:
        return ""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith(BINARY_KEY_PREFIX):
        return text
    return BINARY_KEY_PREFIX + base64.b64encode(key).decode("ascii")


class InvalidKeyError(RecordFormatError, ValueError):
    pass


_KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}


def check_key(key: object) -> bytes | None:
    """A record key as bytes. Keys must be UTF-8 text: Restate maps them to object keys and
    blocks the partition on anything else. InvalidKeyError says why not."""
    if key is None:
        return None
    if not isinstance(key, str):
        kind = _KINDS.get(type(key), type(key).__name__)
        raise InvalidKeyError(f"key must be a string (UTF-8 text), got {kind}")
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"key {key!r} is not valid UTF-8 ({exc.reason})") from None


def built(cls: type[_F], fields: dict[str, object]) -> _F:
    """A frozen dataclass instance from all its fields without running its __init__, which
    sets each field through object.__setattr__: half of the per-record cost of building
    coordinates and events in a batch (benchmarks/batch_decode_cost.py). `fields` becomes
    the instance's own __dict__ (not copied): pass a dict made for it."""
    instance = _new(cls)
    _set(instance, "__dict__", fields)
    return instance


_new = object.__new__
_set = object.__setattr__


@dataclass(frozen=True)
class KafkaCoordinates:
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    subscription_id: str | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> KafkaCoordinates:
        def number(name: str) -> int:
            try:
                return int(headers.get(name, "-1"))
            except ValueError:
                return -1

        millis = headers.get("kafka.timestamp")
        timestamp = (
            datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
            if millis and millis.lstrip("-").isdigit()
            else None
        )
        key: bytes | None = None
        if "kafka.key" in headers:
            try:
                key = base64.b64decode(headers["kafka.key"], validate=True)
            except (binascii.Error, ValueError):
                key = None
        return cls(
            topic=headers.get("kafka.topic", ""),
            partition=number("kafka.partition"),
            offset=number("kafka.offset"),
            timestamp=timestamp,
            key=key,
            subscription_id=headers.get("restate.subscription.id"),
        )

    def to_headers(self) -> dict[str, str]:
        """The invocation headers `from_headers` reads back into these coordinates."""
        headers = {
            "kafka.topic": self.topic,
            "kafka.partition": str(self.partition),
            "kafka.offset": str(self.offset),
        }
        if self.timestamp is not None:
            headers["kafka.timestamp"] = str(round(self.timestamp.timestamp() * 1000))
        if self.key is not None:
            headers["kafka.key"] = base64.b64encode(self.key).decode()
        if self.subscription_id is not None:
            headers["restate.subscription.id"] = self.subscription_id
        return headers

    @property
    def key_text(self) -> str | None:
        """The record key as text (Restate only routes UTF-8 keys)."""
        return self.key.decode("utf-8", "replace") if self.key is not None else None

    @property
    def handler_key(self) -> str | None:
        """`KafkaEvent.key`: the key's text, or for a key that is not UTF-8 (only
        restate-stream's consumer delivers those) the `b64:` object key it went to."""
        if self.key is None:
            return None
        try:
            return self.key.decode("utf-8")
        except UnicodeDecodeError:
            return object_key_for(self.key)

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class KafkaEvent(Generic[T]):
    value: T
    key: str | None
    coordinates: KafkaCoordinates
    raw: bytes
    # The CloudEvents id when the record was published as an envelope (restate-stream does).
    event_id: str | None = None
    event_type: str | None = None
    # The record's Kafka headers, in order (restate-stream's consumer only: subscriptions
    # drop them).
    headers: Headers = ()

    @property
    def key_bytes(self) -> bytes | None:
        """The record key as written to Kafka (`key` is its text or object-key form)."""
        return self.coordinates.key

    @property
    def topic(self) -> str:
        return self.coordinates.topic

    @property
    def partition(self) -> int:
        return self.coordinates.partition

    @property
    def offset(self) -> int:
        return self.coordinates.offset

    @property
    def timestamp(self) -> datetime | None:
        return self.coordinates.timestamp


_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(KafkaEvent))


class DeferredEvent(KafkaEvent[T]):
    """A KafkaEvent whose coordinates are built when first asked (`_build_coordinates`), not
    before: a batch's handler often never asks, and building them (a datetime and an object
    per record) was a fifth of a batched record's worker CPU. Equal to a KafkaEvent with the
    same fields; `dataclasses.replace` works (the dataclass __init__ sets the coordinates)."""

    @property
    def coordinates(self) -> KafkaCoordinates:
        fields = self.__dict__
        coordinates: KafkaCoordinates | None = fields.get("coordinates")
        if coordinates is None:
            coordinates = fields["coordinates"] = self._build_coordinates()
        return coordinates

    @coordinates.setter
    def coordinates(self, value: KafkaCoordinates) -> None:
        self.__dict__["coordinates"] = value

    def _build_coordinates(self) -> KafkaCoordinates:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KafkaEvent):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _EVENT_FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in _EVENT_FIELDS))

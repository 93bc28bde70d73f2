"""The records of a dead-letter topic: one model for the writer (the bound handler) and the
readers (`dlq list`, `dlq redrive`, `status`).

Two kinds, each inside a CloudEvents envelope, keyed by the source record's key:

- `DeadLetter` (type `restate-stream.dead-letter`): a record the binding's handler could not
  process, with its original key and value and why. Its JSON is what earlier versions wrote;
  a letter written by a redriven invocation adds `redrive_of`, the dead letter it was redriven
  from, so a source record's letters form a history.
- `Resolution` (type `restate-stream.dead-letter-resolved`): written by the bound handler when
  an invocation redriven from a dead letter went through the handler without a new letter.
  It names that letter (`redrive_of`); `dlq` counts a source record as resolved when its
  latest letter has one.

`dlq redrive` tells the handler which letter it redrives in the `restate-stream.redrive-of`
invocation header (`<dlq topic>/<partition>/<offset>`).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError

from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.formats import unwrap_cloudevent

DEAD_LETTER_TYPE = "restate-stream.dead-letter"
RESOLVED_TYPE = "restate-stream.dead-letter-resolved"
REDRIVE_OF_HEADER = "restate-stream.redrive-of"

# isoformat, as earlier versions wrote (pydantic's own JSON form writes "Z" for UTC).
IsoDatetime = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class LetterRef(_Model):
    """Where a dead letter is: its dead-letter topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def header(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def from_header(cls, text: str | None) -> LetterRef | None:
        """None for a missing or malformed header (Kafka topic names have no "/")."""
        if not text:
            return None
        topic, _, rest = text.partition("/")
        partition, _, offset = rest.partition("/")
        if not topic or not partition.isdigit() or not offset.isdigit():
            return None
        return cls(topic=topic, partition=int(partition), offset=int(offset))

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class SourceRecord(_Model):
    """The Kafka record a dead letter stands for."""

    topic: str
    partition: int
    offset: int
    timestamp: IsoDatetime | None = None
    subscription_id: str | None = None

    @property
    def coordinates(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class ErrorInfo(_Model):
    type: str
    message: str


class DeadLetter(_Model):
    binding: str
    source: SourceRecord
    key: str | None
    value: str | None  # the value as text when it is UTF-8, else None and value_base64
    value_base64: str | None
    error: ErrorInfo
    attempts: int
    failed_at: IsoDatetime
    redrive_of: LetterRef | None = None
    # The raw key when it is not UTF-8 (`key` then shows it with replacement characters).
    key_base64: str | None = None

    @classmethod
    def of(
        cls,
        binding: str,
        coords: KafkaCoordinates,
        raw: bytes,
        error_type: str,
        message: str,
        attempts: int,
        redrive_of: LetterRef | None = None,
    ) -> DeadLetter:
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            binding=binding,
            source=_source(coords),
            key=coords.key_text,
            value=text,
            value_base64=None if text is not None else base64.b64encode(raw).decode(),
            error=ErrorInfo(type=error_type, message=message),
            attempts=attempts,
            failed_at=datetime.now(UTC),
            redrive_of=redrive_of,
            key_base64=_base64_unless_utf8(coords.key),
        )

    def value_bytes(self) -> bytes:
        if self.value is not None:
            return self.value.encode("utf-8")
        return base64.b64decode(self.value_base64 or "")

    def coordinates(self) -> KafkaCoordinates:
        """The source record's coordinates, as its invocation headers carried them."""
        s = self.source
        if self.key_base64 is not None:
            key: bytes | None = base64.b64decode(self.key_base64)
        else:
            key = None if self.key is None else self.key.encode("utf-8")
        return KafkaCoordinates(s.topic, s.partition, s.offset, s.timestamp, key, s.subscription_id)

    def to_json(self) -> dict[str, Any]:
        # Letters from a subscription keep exactly the JSON earlier versions wrote.
        unset = {name for name in ("redrive_of", "key_base64") if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=unset or None)

    @classmethod
    def from_json(cls, data: Any) -> DeadLetter:
        return cls.model_validate(data)


class Resolution(_Model):
    binding: str
    source: SourceRecord
    key: str | None
    redrive_of: LetterRef  # the dead letter whose redrive went through
    resolved_at: IsoDatetime

    @classmethod
    def of(cls, binding: str, coords: KafkaCoordinates, redrive_of: LetterRef) -> Resolution:
        return cls(
            binding=binding,
            source=_source(coords),
            key=coords.key_text,
            redrive_of=redrive_of,
            resolved_at=datetime.now(UTC),
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _base64_unless_utf8(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode()
    return None


def _source(coords: KafkaCoordinates) -> SourceRecord:
    return SourceRecord(
        topic=coords.topic,
        partition=coords.partition,
        offset=coords.offset,
        timestamp=coords.timestamp,
        subscription_id=coords.subscription_id,
    )


class NotADeadLetterError(ValueError):
    pass


def unwrap_record(value: bytes) -> tuple[dict[str, Any], str | None, str]:
    """(JSON object, CloudEvents id, kind) of a dead-letter topic's record: the kind is
    RESOLVED_TYPE or DEAD_LETTER_TYPE (a record without an envelope counts as a letter).
    NotADeadLetterError says what is wrong with anything else."""
    try:
        data, event_id, kind = unwrap_cloudevent(json.loads(value))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise NotADeadLetterError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotADeadLetterError(f"expected a JSON object, got {type(data).__name__}")
    return data, event_id, RESOLVED_TYPE if kind == RESOLVED_TYPE else DEAD_LETTER_TYPE


def record_model(data: dict[str, Any], kind: str) -> DeadLetter | Resolution:
    """The letter or Resolution of `unwrap_record`'s JSON; NotADeadLetterError if it is not."""
    model: type[DeadLetter] | type[Resolution]
    model = Resolution if kind == RESOLVED_TYPE else DeadLetter
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()
        )
        raise NotADeadLetterError(problems) from None


def parse_record(value: bytes) -> DeadLetter | Resolution:
    """A dead-letter topic's record (inside its CloudEvents envelope); NotADeadLetterError
    says what is wrong with anything else."""
    data, _, kind = unwrap_record(value)
    return record_model(data, kind)

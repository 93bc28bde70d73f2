"""Which records of a dead-letter topic `dlq` acts on.

Writing a binding's dead-letter topic is as good as writing its source topic: `dlq redrive`
hands a letter's key and value to the handler, under the source coordinates the letter names,
and a Resolution takes a letter out of the redrive. So a record is refused (listed with the
reason, never sent, never counted as resolving anything) when:

- its signature does not hold while signing is on (runtime/letter_signing.py): unsigned, or
  not written with the key;
- it names a source topic other than the binding's: the binding never read that record;
- its key fields disagree: the Kafka key of the record on the dead-letter topic, the letter's
  `key` and its `key_base64` (the raw key, set only when it is not UTF-8) must all say the
  same key, as the writers (the bound handler, `unblock`) write them.

Without signing, the last two only catch records that were not written by restate-stream
(or were edited); anyone who can write the topic can also make them agree.
"""

from __future__ import annotations

import base64
import binascii

from restate_stream.runtime.dead_letter import DeadLetter, Resolution


def source_disagreement(record: DeadLetter | Resolution, source_topic: str | None) -> str | None:
    if source_topic is None or record.source.topic == source_topic:
        return None
    return f"its source topic {record.source.topic!r} is not the binding's topic {source_topic!r}"


def key_disagreement(record: DeadLetter | Resolution, kafka_key: bytes | None) -> str | None:
    """Why the record's key fields disagree with each other or with its Kafka key; None if
    they agree."""
    text = record.key
    raw: bytes | None = None if text is None else text.encode("utf-8")
    if isinstance(record, DeadLetter) and record.key_base64 is not None:
        try:
            raw = base64.b64decode(record.key_base64, validate=True)
        except (binascii.Error, ValueError):
            return "its key_base64 is not base64"
        if _is_utf8(raw):
            return "its key_base64 is set although the key is UTF-8 text"
        if text != raw.decode("utf-8", "replace"):
            return "its key and key_base64 name different keys"
    # The bound handler's Kafka key is the key as text; `unblock` writes the raw key.
    expected = {raw, None if text is None else text.encode("utf-8")}
    if kafka_key not in expected:
        shown = "no key" if kafka_key is None else f"key {kafka_key!r}"
        return f"its Kafka record has {shown}, but the letter's key is {text!r}"
    return None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

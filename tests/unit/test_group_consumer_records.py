"""A consume()'s messages become PolledRecords field for field: a missing timestamp is None,
headers keep their order (text values as UTF-8 bytes, null ones null), an end-of-partition
event is skipped quietly, another error is logged and skipped, a fatal one raises."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    Message,
)

from connectors.group_consumer import PolledRecord, polled_records

MS = 1_764_000_000_000


def message(offset: int, **fields: object) -> Message:
    fields.setdefault("timestamp", (TIMESTAMP_CREATE_TIME, MS + offset))
    return Message(topic="orders", partition=2, offset=offset, **fields)  # type: ignore[arg-type]


def test_plain_messages_become_records_field_for_field() -> None:
    messages = [message(1, key=b"k", value=b'{"n": 1}'), message(2, key=None, value=None)]
    assert polled_records(messages, "orders", "g") == [
        PolledRecord("orders", 2, 1, MS + 1, b"k", b'{"n": 1}', ()),
        PolledRecord("orders", 2, 2, MS + 2, None, None, ()),
    ]


def test_a_missing_timestamp_is_none_and_headers_are_bytes_in_order() -> None:
    messages = [
        message(1, value=b"a", timestamp=(TIMESTAMP_NOT_AVAILABLE, 0)),
        message(2, value=b"b", headers=[("z", "text"), ("a", None), ("z", b"\xff")]),
        message(3, value=b"c", headers=[]),
    ]
    records = polled_records(messages, "orders", "g")
    assert [(r.timestamp_ms, r.headers) for r in records] == [
        (None, ()),
        (MS + 2, (("z", b"text"), ("a", None), ("z", b"\xff"))),
        (MS + 3, ()),
    ]


def test_errors_are_skipped_logged_or_raised(caplog: pytest.LogCaptureFixture) -> None:
    eof = message(5, error=KafkaError(KafkaError._PARTITION_EOF))
    transport = message(6, error=KafkaError(KafkaError._TRANSPORT))
    messages = [message(4, value=b"a"), eof, transport, message(7, value=b"b")]
    with caplog.at_level(logging.WARNING, "connectors.group_consumer"):
        records = polled_records(messages, "orders", "g")
    assert [r.offset for r in records] == [4, 7]
    assert len(caplog.records) == 1 and caplog.records[0].getMessage().startswith("g: ")
    fatal = message(8, error=KafkaError(KafkaError._FATAL, fatal=True))
    with pytest.raises(KafkaException):
        polled_records([message(4, value=b"a"), fatal], "orders", "g")

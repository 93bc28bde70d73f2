"""How `restate-stream tail` shows a record."""

from __future__ import annotations

from connectors.consume import ConsumedRecord
from restate_stream.cli.topics import WIDTH, render_record
from restate_stream.runtime.formats import cloudevent


def record(value: bytes | None, key: bytes | None = b"k-1") -> ConsumedRecord:
    return ConsumedRecord("t", 2, 41, key, value, None)


def test_envelopes_are_unwrapped_to_id_and_data() -> None:
    line = render_record(record(cloudevent("ev-1", "x", "s", "now", {"a": 1})))
    assert line == 'p2@41  key=k-1  [event ev-1] {"a":1}'


def test_text_binary_and_long_values() -> None:
    assert render_record(record(b"plain text")).endswith("key=k-1  plain text")
    assert render_record(record(b"\xff\x00", key=None)) == "p2@41  key=-  base64:/wA="
    long = render_record(record(b"x" * 1000))
    assert long.endswith("…") and len(long.split("  ", 2)[2]) == WIDTH

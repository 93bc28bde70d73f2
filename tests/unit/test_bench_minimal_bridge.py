"""The minimal bridge's send body (benchmarks/minimal_bridge.py): each record's partition,
offset and JSON value spliced into one JSON array, a null value as null."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchmarks.minimal_bridge import body


@dataclass
class Polled:
    p: int
    o: int
    v: bytes | None

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes | None:
        return self.v


def test_the_body_carries_each_records_coordinates_and_value_in_order() -> None:
    polled: list[Any] = [Polled(3, 7, b'{"seq": 1}'), Polled(3, 9, None), Polled(3, 10, b"[1,2]")]
    assert json.loads(body(polled)) == [
        {"p": 3, "o": 7, "v": {"seq": 1}},
        {"p": 3, "o": 9, "v": None},
        {"p": 3, "o": 10, "v": [1, 2]},
    ]

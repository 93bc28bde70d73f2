"""hypercorn's HTTP/2 protocol with restate-stream's one change (runtime/_hypercorn.py): DATA
for a stream whose response already ended is dropped, not a KeyError that ends the connection
and every invocation multiplexed on it."""

from __future__ import annotations

from typing import Any

import h2.events
import pytest
from hypercorn.protocol.h2 import H2Protocol

from restate_stream.runtime import _hypercorn, serving


class Stream:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def handle(self, event: Any) -> None:
        self.events.append(event)


class Connection:
    def __init__(self) -> None:
        self.acknowledged: list[tuple[int, int]] = []

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        self.acknowledged.append((size, stream_id))


class Protocol:
    """The parts of H2Protocol that handling DATA touches."""

    def __init__(self, streams: dict[int, Stream]) -> None:
        self.streams = streams
        self.connection = Connection()
        self.flushed = 0  # acknowledged credit goes out to the peer only with a flush

    async def _flush(self) -> None:
        self.flushed = len(self.connection.acknowledged)


def data(stream_id: int, payload: bytes) -> h2.events.DataReceived:
    event = h2.events.DataReceived(stream_id=stream_id)
    event.data = payload
    event.flow_controlled_length = len(payload)
    return event


def test_serving_patches_hypercorn() -> None:
    assert serving.patch_hypercorn is _hypercorn.patch_hypercorn
    assert H2Protocol._handle_events is _hypercorn._handle_events


async def test_unpatched_hypercorn_fails_the_connection_on_data_for_an_ended_stream() -> None:
    # What the patch is for: without it, the connection's task ends with this KeyError.
    with pytest.raises(KeyError):
        await _hypercorn._original_handle_events(Protocol({}), [data(1, b"late")])  # type: ignore[arg-type]


async def test_data_for_an_ended_stream_is_dropped_and_its_credit_returned() -> None:
    live = Stream()
    protocol = Protocol({3: live})
    events = [data(1, b"late"), data(3, b"body")]
    await H2Protocol._handle_events(protocol, events)  # type: ignore[arg-type]
    assert [e.data for e in live.events] == [b"body"]
    assert protocol.connection.acknowledged == [(4, 1), (4, 3)]


async def test_credit_for_dropped_data_is_sent_at_once() -> None:
    """DATA for ended streams only, as a batch: the WINDOW_UPDATEs go out with this batch,
    not with whatever frame happens to be sent next (the peer may be waiting for them)."""
    protocol = Protocol({})
    await H2Protocol._handle_events(protocol, [data(1, b"late"), data(5, b"later")])  # type: ignore[arg-type]
    assert protocol.connection.acknowledged == [(4, 1), (5, 5)]
    assert protocol.flushed == 2

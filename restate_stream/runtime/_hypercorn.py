"""The one change restate-stream makes to hypercorn's HTTP/2 protocol, kept in one place.

Restate's service protocol is bidirectional: the request body may still be streaming when the
handler has answered, so a DATA frame can arrive for a stream whose response hypercorn has
already finished and forgotten. hypercorn 0.18 ignores END_STREAM for such a stream ("Response
sent before full request received") but not DATA: `self.streams[stream_id]` raises KeyError,
which ends the whole connection, and with it every other invocation multiplexed on it (seen
at a worker's graceful stop: a traceback, and Restate retrying invocations that had run).
Here DATA for a forgotten stream is dropped the same way, its flow-control credit returned.
"""

from __future__ import annotations

import contextlib
from typing import Any

import h2.events
import h2.exceptions
from hypercorn.protocol.h2 import H2Protocol

_original_handle_events = H2Protocol._handle_events


async def _handle_events(self: H2Protocol, events: list[h2.events.Event]) -> None:
    # One at a time: an earlier event of the same list may open or close the stream.
    unsent = False  # credit returned since the last flush (the original flushes each call)
    for event in events:
        if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            unsent = True
            continue
        await _original_handle_events(self, [event])
        unsent = False
    if unsent:  # else the peer may wait for that window until some other frame goes out
        await self._flush()


def patch_hypercorn() -> None:
    """Idempotent; called where hypercorn serves (runtime/serving.py imports it)."""
    patched: Any = _handle_events
    H2Protocol._handle_events = patched  # type: ignore[method-assign]

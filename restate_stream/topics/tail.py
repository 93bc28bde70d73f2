"""`restate-stream tail TOPIC`: read a topic's records, for people checking what landed.

Reads without a consumer group (nothing is committed), from the beginning or the last N
per partition, and with follow keeps polling for new records until Ctrl-C. The command line
renders each record (restate_stream.cli.topics).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.consume import ConsumedRecord, end_offsets, read_topic
from restate_stream.topics.publish import Target


def tail(
    target: Target,
    *,
    last: int | None,
    follow: bool,
    show: Callable[[ConsumedRecord], None],
    poll_interval: float = 0.5,
) -> int:
    """Hand each record to `show`; returns how many were shown (until Ctrl-C with follow)."""
    start: dict[int, int] | None = None
    if last is not None:
        ends = end_offsets(target.properties, target.topic)
        start = {p: max(end - last, 0) for p, end in ends.items()}
    shown = 0
    try:
        while True:
            records = read_topic(target.properties, target.topic, start=start)
            for record in records:
                show(record)
            shown += len(records)
            if not follow:
                return shown
            # Next round: from after what was shown, per partition.
            position = dict(start or {})
            for record in records:
                position[record.partition] = record.offset + 1
            start = position or {p: 0 for p in end_offsets(target.properties, target.topic)}
            time.sleep(poll_interval)
    except KeyboardInterrupt:
        return shown

"""Where a batched record's time goes inside the delivery, for benchmarks
(benchmarks/batch_latency.py --breakdown): an observer the delivery tells when it polled
records, cut them into a batch and got a send accepted, with the send's stages stamped.

Off by default (no observer: one `is None` test per poll, cut and send stage); the stamps are
wall-clock seconds (time.time()) so they compare with the handler's run time and the records'
Kafka timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from connectors.group_consumer import PolledRecord


@dataclass
class SendStages:
    """When one send passed each stage, time.time() seconds (0.0: not reached yet)."""

    started: float = 0.0  # the send's task began (its first records were cut)
    previous_accepted: float = 0.0  # the key's previous send was accepted (per-key FIFO)
    paced: float = 0.0  # done waiting on the key's earlier invocation (batch/pacing.py)
    posted: float = 0.0  # a send slot was free: the request went out
    accepted: float = 0.0  # Restate answered 202 (or 200; a call: once the invocation completed)
    called: bool = False  # a call (BatchDelivery._call): its acceptance was not seen apart


class DeliveryObserver(Protocol):
    def polled(self, records: list[PolledRecord], at: float) -> None: ...

    def cut(self, records: list[PolledRecord], at: float) -> None: ...

    def accepted(self, key: str, records: list[PolledRecord], stages: SendStages) -> None: ...

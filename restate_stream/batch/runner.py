"""Runs the batched bindings' deliveries of a bindings file next to the served app.

Each worker process runs one delivery per batched binding; the processes of a worker share
the topic's partitions through the binding's consumer group.
"""

from __future__ import annotations

import asyncio
import logging

from restate_stream.batch.delivery import BatchDelivery
from restate_stream.bindings import BindingsFile

log = logging.getLogger("restate_stream.batch")

RESTART_DELAY = 1.0


class BatchRunner:
    def __init__(self, spec: BindingsFile) -> None:
        self.deliveries = [
            BatchDelivery(b, spec.clusters[b.cluster].properties, spec.restate.ingress_url)
            for b in spec.bindings
            if b.batch is not None and not b.paused
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __bool__(self) -> bool:
        return bool(self.deliveries)

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._supervise(d)) for d in self.deliveries]

    async def _supervise(self, delivery: BatchDelivery) -> None:
        while not self._stop.is_set():
            try:
                await delivery.run(self._stop)
            except Exception:
                # A fresh consumer resumes from the committed offsets: nothing is skipped.
                log.exception("binding %s: delivery failed; restarting", delivery.binding.name)
                await asyncio.sleep(RESTART_DELAY)

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

"""Runs the deliveries of a bindings file's own-consumer bindings (batched, or `delivery:
consumer`) next to the served app.

Each worker process runs one delivery per such binding; the processes of a worker share
the topic's partitions through the binding's consumer group.

`restate-stream pause NAME` / `resume NAME` write `paused:` into the bindings file; the
runner follows the file: it polls its modification time and size (WATCH_INTERVAL) and, when
they change, reloads it and stops or starts deliveries so that exactly the batched bindings
that are not paused run. Stopping a delivery commits the offsets of what Restate accepted and
leaves the group, so `resume` continues where `pause` stopped. Watching the file (rather than
a control endpoint on the worker) because the file is already the source of truth for
`paused`, every worker process reads it (an HTTP endpoint would reach only the one process
hypercorn hands the request to), and it needs no port, authentication or address discovery.
The bindings delivered by the consumer when the worker started are followed, and so are the
per-record bindings it served then, which `migrate` (or an edit of `delivery:`) may move onto
the consumer: their bound handler is the same for both deliveries. Other changes (a binding
added, switched between batched and unbatched, new batch limits) change the bound handlers
and take a worker restart; until then a binding the file no longer has on the consumer is
stopped, so it leaves its group to the subscription that takes over. Every worker serving a
bindings file runs a runner, with nothing on the consumer too: idle, it stats the file once a
WATCH_INTERVAL, and `migrate --to consumer` starts the consumer in it without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from restate_stream.batch.delivery import BatchDelivery
from restate_stream.bindings import Binding, BindingsFile, load_bindings
from restate_stream.errors import RestateStreamError

log = logging.getLogger("restate_stream.batch")

RESTART_DELAY = 1.0
WATCH_INTERVAL = 1.0


@dataclass
class _Running:
    stop: asyncio.Event
    task: asyncio.Task[None]


class BatchRunner:
    def __init__(
        self,
        spec: BindingsFile,
        *,
        watch_interval: float = WATCH_INTERVAL,
    ) -> None:
        """`spec`: as the worker bound it (its bindings' `keeps_high_water` set:
        runtime/bound.py `with_high_water`)."""
        self.path: Path = spec.path
        self.watch_interval = watch_interval
        self.deliveries = {b.name: self._delivery(spec, b) for b in spec.bindings if b.own_consumer}
        # Per-record bindings bound at start: `migrate --to consumer` may move one onto the
        # consumer later (its bound handler is the same for both deliveries).
        self._per_record = {b.name: b for b in spec.bindings if b.batch is None}
        # What the file last said should run; kept across stop and start.
        self._wanted = {b.name for b in spec.bindings if b.own_consumer and not b.paused}
        self._running: dict[str, _Running] = {}
        self._watcher: asyncio.Task[None] | None = None
        # None: the first poll reloads the file, catching an edit made since `spec` was read.
        self._seen: tuple[int, int] | None = None

    @property
    def running(self) -> set[str]:
        return set(self._running)

    async def start(self) -> None:
        await self._converge(self._wanted)
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._converge(set())

    # --- following the file ---------------------------------------------------------------

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            seen = self._stat()
            if seen is None or seen == self._seen:
                continue
            self._seen = seen
            try:
                spec = await asyncio.to_thread(load_bindings, self.path)
            except RestateStreamError as exc:
                # Mid-edit or broken: keep running as before; the next change is read again.
                log.warning("%s changed, does not load; deliveries unchanged: %s", self.path, exc)
                continue
            for b in spec.bindings:
                if b.name not in self.deliveries and self._joins(b):
                    # The reloaded file knows nothing of the app: its target is the one bound.
                    bound = self._per_record[b.name]
                    b = dataclasses.replace(b, keeps_high_water=bound.keeps_high_water)
                    self.deliveries[b.name] = self._delivery(spec, b)
            self._wanted = {
                b.name
                for b in spec.bindings
                if b.own_consumer and not b.paused and b.name in self.deliveries
            }
            try:
                await self._converge(self._wanted)
            except Exception:
                log.exception("following %s failed; retrying on its next change", self.path)

    def _joins(self, binding: Binding) -> bool:
        """A per-record binding the worker served by subscription, now on the consumer."""
        bound = self._per_record.get(binding.name)
        return (
            binding.own_consumer
            and binding.batch is None
            and bound is not None
            and (bound.service, bound.handler) == (binding.service, binding.handler)
        )

    async def _converge(self, wanted: set[str]) -> None:
        """Stop the deliveries not in `wanted` (each commits what was accepted and leaves its
        group), then start the ones in `wanted` not running."""
        for name in sorted(set(self._running) - wanted):
            running = self._running.pop(name)
            running.stop.set()
            await asyncio.gather(running.task, return_exceptions=True)
            log.info("binding %s: delivery stopped; accepted offsets committed", name)
        for name in sorted(wanted - set(self._running)):
            log.info("binding %s: delivery starting from the committed offsets", name)
            stop = asyncio.Event()
            task = asyncio.create_task(self._supervise(self.deliveries[name], stop))
            self._running[name] = _Running(stop, task)

    def _delivery(self, spec: BindingsFile, binding: Binding) -> BatchDelivery:
        return BatchDelivery(
            binding, spec.clusters[binding.cluster].properties, spec.restate.ingress_url
        )

    async def _supervise(self, delivery: BatchDelivery, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await delivery.run(stop)
            except Exception:
                # A fresh consumer resumes from the committed offsets: nothing is skipped.
                log.exception("binding %s: delivery failed; restarting", delivery.binding.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESTART_DELAY)

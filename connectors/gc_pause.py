"""Garbage collection paused over a stretch that only builds objects which stay reachable.

CPython starts a collection every 700 net allocations of container objects (lists, dicts,
instances), and a full one, walking every object of the process, whenever enough survivors
piled up. Decoding a batch body builds several containers per record, all reachable until the
stretch ends: a collection in the middle finds no garbage, yet each one walks them, and they
survive into the older generations, so full collections follow. In a worker (a heap of ~90k
objects: the SDK, granian, the user's app) that was a third of a batched record's worker CPU
(py-spy/perf: gc_collect_main, visit_decref, visit_reachable; benchmarks/batch_decode_cost.py
--worker-heap); in the delivery, polling and encoding a cut's records, a third of its too.
Paused, what the stretch built and dropped is freed by reference counting and never walked;
what it keeps counts towards the next collection as before.

Used by the consumer's poll (group_consumer.py), the batch body's encoding (the delivery) and
decoding (the worker), and the worker's events. Here, in the lowest package, so that the
consumer uses the same pause as restate_stream (which imports this package, never the other
way round).

Only around synchronous code: no `await` inside, nor a wait for I/O. Collection is
process-wide, so a pause held across a suspension would hold it for every other task too,
and two tasks' pauses would end out of order. Threads may overlap their pauses (the consumer's
poll thread and the event loop): the one that paused resumes, so once both ended collection
is on again; in between, the other's stretch may be collected as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    if not gc.isenabled():  # paused already (or by the application): left as it is
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

"""Garbage collection paused over a stretch that only builds objects which stay reachable;
and a serving process's collections tuned once its app is built (`tune_for_serving`): its
startup objects kept out of them, young ones run less often.

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

Used by the batch body's encoding (the delivery) and decoding (the worker), the worker's
events, and the consumer's poll (connectors/group_consumer.py, its own three lines).

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


# Container allocations (net of those freed) between young collections in a serving process;
# CPython's default is 700. A batch invocation holds a few containers per record (events, their
# fields, the values) until it ends, when reference counting frees them: with 700, young
# collections ran every few hundred records of a batch being handled, walked them while alive
# and moved them to older generations, whose collections walked them again. With 50,000 a
# batch is mostly freed before any collection sees it: the worker's CPU per record at 10,000
# per key was 0.0028 against 0.0032 s per 1,000 (benchmarks/e2e_throughput.py, two paired
# runs). What it costs: cyclic garbage waits longer for a collection to free it.
YOUNG_COLLECTION_THRESHOLD = 50_000


def tune_for_serving() -> None:
    """Called once a serving process built its app.

    Every object alive now moves to the permanent generation, which collections never walk:
    the modules, classes and app it loaded (~90k objects in a worker) stop being walked by
    every full collection, which the batches' and invocations' survivors start every few
    invocations. In benchmarks/e2e_throughput.py (two loaded runs each way) the worker's CPU
    per record was 15-45% lower, batched or not. What it costs: one of those objects that later
    becomes cyclic garbage is never freed (module-level objects seldom do; a collection first
    frees what already is).

    And young collections run every YOUNG_COLLECTION_THRESHOLD allocations, not 700."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])

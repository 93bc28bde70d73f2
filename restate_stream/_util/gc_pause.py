"""A serving process's garbage collections tuned once its app is built (`tune_for_serving`):
its startup objects kept out of them, young ones run less often. (Pausing collection over a
stretch that only builds reachable objects is connectors/gc_pause.py's `collection_paused`.)
"""

from __future__ import annotations

import gc

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

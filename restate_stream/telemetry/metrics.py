"""Prometheus metrics of a worker, per binding and topic, from every serving process.

Each serving process records into prometheus-client's multiprocess files (the directory in
PROMETHEUS_MULTIPROC_DIR, set by the worker before it starts them); the worker's main
process serves `/metrics` summing them (`metrics_registry`), so `processes: N` adds up. Only
counters and histograms are used: they sum across processes and survive a process's death
until the worker restarts. Labels are bounded: binding, topic, outcome, cause (an error
type), never keys or ids.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from restate_stream.runtime.outcomes import (
    AppliedRecords,
    Event,
    HandlerRun,
    Outcome,
    PublishDone,
    Retrying,
    observe,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DECODE_CAUSES = frozenset({"DecodeError", "Tombstone"})

# name -> (type, labels, help): docs/operations.md's table is this one.
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "restate_stream_records_total": (
        "counter",
        ("binding", "topic", "outcome", "cause"),
        "Records a bound handler decided on, by outcome (applied, dead_lettered, dropped, "
        "deduplicated, redelivered, retrying) and cause (the error type, or empty)",
    ),
    "restate_stream_decode_failures_total": (
        "counter",
        ("binding", "topic"),
        "Records that could not be decoded in the binding's format (dead-lettered)",
    ),
    "restate_stream_retries_total": (
        "counter",
        ("binding", "topic"),
        "Handler attempts that raised a retryable error (Restate retries the invocation)",
    ),
    "restate_stream_handler_duration_seconds": (
        "histogram",
        ("binding",),
        "Time in the user's handler function per call (a batch: one call)",
    ),
    "restate_stream_batch_records": (
        "histogram",
        ("binding",),
        "Records per handler call of a batched binding",
    ),
    "restate_stream_published_records_total": (
        "counter",
        ("topic",),
        "Records published durably and acknowledged by the broker",
    ),
    "restate_stream_publish_errors_total": (
        "counter",
        ("topic", "error"),
        "Durable publishes the broker did not acknowledge (retried by the publisher)",
    ),
    "restate_stream_publish_ack_seconds": (
        "histogram",
        ("topic",),
        "Produce to broker acknowledgement, per durable publish call",
    ),
}

# The worker's own process metrics (_WorkerProcesses), beside METRICS.
PROCESS_METRICS = (
    "restate_stream_worker_cpu_seconds_total",
    "restate_stream_worker_resident_memory_bytes",
    "restate_stream_worker_processes",
)

_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000)


class WorkerMetrics:
    """The instruments of one process, fed by `observe(event)`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        def counter(name: str) -> Counter:
            _, labels, doc = METRICS[name]
            # prometheus-client appends _total itself.
            return Counter(name.removesuffix("_total"), doc, labels, registry=registry)

        def histogram(name: str, buckets: Iterable[float] | None = None) -> Histogram:
            _, labels, doc = METRICS[name]
            if buckets is None:
                return Histogram(name, doc, labels, registry=registry)
            return Histogram(name, doc, labels, registry=registry, buckets=tuple(buckets))

        self.records = counter("restate_stream_records_total")
        self.decode_failures = counter("restate_stream_decode_failures_total")
        self.retries = counter("restate_stream_retries_total")
        self.handler_seconds = histogram("restate_stream_handler_duration_seconds")
        self.batch_records = histogram("restate_stream_batch_records", _BATCH_BUCKETS)
        self.published = counter("restate_stream_published_records_total")
        self.publish_errors = counter("restate_stream_publish_errors_total")
        self.publish_ack_seconds = histogram("restate_stream_publish_ack_seconds")
        self.batched: set[str] = set()  # bindings whose handler calls count as batches

    def observe(self, event: Event) -> None:
        if isinstance(event, Outcome):
            binding, topic = event.binding, event.coordinates.topic
            outcome = event.decision.replace("-", "_")
            self.records.labels(binding, topic, outcome, event.cause or "").inc()
            if event.cause in _DECODE_CAUSES:
                self.decode_failures.labels(binding, topic).inc()
        elif isinstance(event, Retrying):
            # An attempt, once: a batch's records each report `retrying` as well.
            self.retries.labels(event.binding, event.topic).inc()
        elif isinstance(event, AppliedRecords):
            self.records.labels(event.binding, event.topic, "applied", "").inc(event.records)
        elif isinstance(event, HandlerRun):
            self.handler_seconds.labels(event.binding).observe(event.seconds)
            if event.binding in self.batched:
                self.batch_records.labels(event.binding).observe(event.records)
        elif isinstance(event, PublishDone):
            if event.error is None:
                self.published.labels(event.topic).inc(event.records)
                self.publish_ack_seconds.labels(event.topic).observe(event.seconds)
            else:
                self.publish_errors.labels(event.topic, event.error).inc(event.records)


_installed: tuple[WorkerMetrics, Callable[[], None]] | None = None


def install_metrics(batched: Iterable[str] = ()) -> WorkerMetrics:
    """Record this process's events from now on (once per process; later calls add batched
    binding names). In a worker's serving process this writes to the multiprocess files."""
    global _installed
    if _installed is None:
        metrics = WorkerMetrics()
        _installed = (metrics, observe(metrics.observe, each_applied=False))
    _installed[0].batched.update(batched)
    return _installed[0]


def prepare_metrics_dir(directory: Path) -> Path:
    """An empty directory for the serving processes' metric files, exported to them through
    PROMETHEUS_MULTIPROC_DIR (set before they start: prometheus-client reads it at import).

    An existing directory is emptied, not recreated, so its mode (mkdtemp's 0700: the files
    name the bindings and topics) stays; a new one is made owner-only."""
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    else:
        directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


class _WorkerProcesses(Collector):
    """CPU and memory of the worker's main process and its serving processes (children):
    prometheus-client's process collector sees one process, and not in multiprocess mode."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def collect(self) -> Iterable[Metric]:
        tick = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        cpu = rss = 0.0
        count = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone since the listing
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == self.pid or ppid == self.pid:
                count += 1
                cpu += (int(fields[11]) + int(fields[12])) / tick
                rss += int(fields[21]) * page
        yield CounterMetricFamily(
            "restate_stream_worker_cpu_seconds",
            "CPU time (user + system) of the worker and its serving processes",
            value=cpu,
        )
        yield GaugeMetricFamily(
            "restate_stream_worker_resident_memory_bytes",
            "Resident memory of the worker and its serving processes",
            value=rss,
        )
        yield GaugeMetricFamily(
            "restate_stream_worker_processes",
            "Live processes of the worker (main process and serving processes)",
            value=count,
        )


def metrics_registry(directory: Path, worker_pid: int | None = None) -> CollectorRegistry:
    """What the worker's `/metrics` serves: every serving process's metrics, summed, and the
    worker's process metrics."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_WorkerProcesses(worker_pid or os.getpid()))
    return registry

"""Worker metrics without engines: events become the documented series, and serving
processes' counts add up in what the worker's /metrics serves."""

from __future__ import annotations

import multiprocessing
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import restate
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.runtime.bound import bind
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent
from restate_stream.runtime.outcomes import (
    AppliedRecords,
    Event,
    HandlerRun,
    Outcome,
    PublishDone,
    Retrying,
    observe,
)
from restate_stream.telemetry.metrics import (
    METRICS,
    MULTIPROC_ENV,
    WorkerMetrics,
    metrics_registry,
    prepare_metrics_dir,
)
from restate_stream.testing import MemoryContext, MemoryPublisher, invoke
from tests.unit.test_batch_wire_v2 import spec

COORDS = KafkaCoordinates("orders", 0, 7, datetime(2026, 1, 1, tzinfo=UTC), b"k", None)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def feed(metrics: WorkerMetrics, copies: int = 1) -> None:
    for _ in range(copies):
        metrics.observe(Outcome("orders", "applied", COORDS))
        metrics.observe(Outcome("orders", "applied", COORDS))
        metrics.observe(Outcome("orders", "dead-lettered", COORDS, "DecodeError", "bad"))
        metrics.observe(Outcome("orders", "retrying", COORDS, "ConnectionError", "down"))
        metrics.observe(Retrying("orders", "orders", "ConnectionError"))
        metrics.observe(Outcome("orders", "deduplicated", COORDS))
        metrics.observe(HandlerRun("clicks", 40, 0.02, False))
        metrics.observe(PublishDone("out", 3, 0.005))
        metrics.observe(PublishDone("out", 1, 0.5, "ProduceFailed"))


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


def test_events_become_the_documented_series() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.batched.add("clicks")
    feed(metrics)
    got = samples(registry)
    records = "restate_stream_records_total"
    assert (
        got[(records, labels(binding="orders", topic="orders", outcome="applied", cause=""))] == 2
    )
    dead = labels(binding="orders", topic="orders", outcome="dead_lettered", cause="DecodeError")
    assert got[(records, dead)] == 1
    dedup = labels(binding="orders", topic="orders", outcome="deduplicated", cause="")
    assert got[(records, dedup)] == 1
    orders = labels(binding="orders", topic="orders")
    assert got[("restate_stream_decode_failures_total", orders)] == 1
    assert got[("restate_stream_retries_total", orders)] == 1
    clicks = labels(binding="clicks")
    assert got[("restate_stream_batch_records_sum", clicks)] == 40
    assert got[("restate_stream_handler_duration_seconds_count", clicks)] == 1
    assert got[("restate_stream_published_records_total", labels(topic="out"))] == 3
    failed = labels(topic="out", error="ProduceFailed")
    assert got[("restate_stream_publish_errors_total", failed)] == 1
    assert got[("restate_stream_publish_ack_seconds_count", labels(topic="out"))] == 1
    exported = {name.removesuffix("_sum").removesuffix("_count") for name, _ in got}
    for name in METRICS:
        assert (
            name in exported
            or f"{name}_bucket" in {n for n, _ in got}
            or any(n.startswith(name) for n in exported)
        ), f"{name} documented but not exported"


def _serving_process(copies: int) -> None:
    from restate_stream.telemetry.metrics import install_metrics

    feed(install_metrics(), copies)


def test_serving_processes_add_up_in_the_workers_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the worker does before starting them: the children read it when they import
    # prometheus_client (this process already has, so it keeps counting in memory).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_serving_process, args=(n,)) for n in (1, 2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    got = samples(metrics_registry(tmp_path))
    applied = labels(binding="orders", topic="orders", outcome="applied", cause="")
    assert got[("restate_stream_records_total", applied)] == 2 * 3
    assert got[("restate_stream_published_records_total", labels(topic="out"))] == 3 * 3
    assert got[("restate_stream_worker_processes", ())] >= 1
    assert got[("restate_stream_worker_cpu_seconds_total", ())] > 0


@pytest.mark.parametrize("exists", [True, False], ids=["mkdtemp's", "a new one"])
def test_the_metrics_directory_stays_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    """The worker passes a 0700 mkdtemp directory; emptying it must not loosen it."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)  # restored after: prepare sets it
    directory = tmp_path / "metrics"
    if exists:
        directory.mkdir(mode=0o700)
        (directory / "counter_1.db").write_bytes(b"old")
        (directory / "leftover").mkdir()
    previous = os.umask(0o022)  # the usual umask: a recreated directory would be 0755
    try:
        assert prepare_metrics_dir(directory) == directory
    finally:
        os.umask(previous)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert list(directory.iterdir()) == []


async def test_a_batchs_applied_records_are_counted_once_not_reported_one_by_one() -> None:
    """Metrics counts a batch's applied records from one AppliedRecords per call; an observer
    that wants each applied record (the test kit) still gets one Outcome per record; neither
    gets both, so nothing is counted twice."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    each: list[Event] = []
    counting: list[Event] = []

    def count(event: Event) -> None:
        counting.append(event)
        metrics.observe(event)

    stops = [observe(count, each_applied=False), observe(each.append)]
    obj = restate.VirtualObject("MetricsBatch")

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
        return None

    bind([obj], spec("MetricsBatch"), {"local": MemoryPublisher()})
    records = [WireRecord("t", 0, i, 1_700_000_000_000, b"k", b'{"n": 1}') for i in range(30)]
    try:
        await invoke(obj, "take", MemoryContext("k", invocation_id="inv_1"), encode_batch(records))
    finally:
        for stop in stops:
            stop()
    applied = labels(binding="b", topic="t", outcome="applied", cause="")
    assert samples(registry)[("restate_stream_records_total", applied)] == 30
    outcomes = [e for e in each if isinstance(e, Outcome)]
    assert [o.coordinates.offset for o in outcomes] == list(range(30))
    assert not [e for e in each if isinstance(e, AppliedRecords)]
    assert [e for e in counting if not isinstance(e, HandlerRun)] == [
        AppliedRecords("b", "t", 30, "inv_1")
    ]


async def test_a_failed_batch_attempt_counts_one_retry_and_each_record_retrying() -> None:
    """retries_total counts attempts (docs/operations.md), not the records a batch held;
    records_total says `retrying` for each of them."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    stop = observe(metrics.observe, each_applied=False)
    obj = restate.VirtualObject("MetricsRetry")

    @obj.handler()
    async def take(ctx: restate.ObjectContext, events: list[KafkaEvent[dict[str, Any]]]) -> None:
        raise ConnectionError("the database is down")

    bind([obj], spec("MetricsRetry"), {"local": MemoryPublisher()})
    records = [WireRecord("t", 0, i, 1_700_000_000_000, b"k", b'{"n": 1}') for i in range(30)]
    try:
        for _ in range(2):  # two attempts of the same invocation
            with pytest.raises(ConnectionError):
                await invoke(
                    obj, "take", MemoryContext("k", invocation_id="inv_1"), encode_batch(records)
                )
    finally:
        stop()
    got = samples(registry)
    assert got[("restate_stream_retries_total", labels(binding="b", topic="t"))] == 2
    retrying = labels(binding="b", topic="t", outcome="retrying", cause="ConnectionError")
    assert got[("restate_stream_records_total", retrying)] == 2 * 30

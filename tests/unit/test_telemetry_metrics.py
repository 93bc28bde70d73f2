"""Worker metrics without engines: events become the documented series, and serving
processes' counts add up in what the worker's /metrics serves."""

from __future__ import annotations

import multiprocessing
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.outcomes import HandlerRun, Outcome, PublishDone
from restate_stream.telemetry.metrics import (
    METRICS,
    MULTIPROC_ENV,
    WorkerMetrics,
    metrics_registry,
    prepare_metrics_dir,
)

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

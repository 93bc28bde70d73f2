"""Metrics on the real engines: the worker's /metrics (two serving processes) counts exactly
the records applied, deduplicated and dead-lettered; `restate-stream metrics` serves the
binding's lag and dead letters; published dead letters carry the CloudEvents header."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.ports import free_ports, wait_until_listening
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack
from restate_stream.testing import CLI, drop_cluster, object_state, scrape_metrics, wait_until

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
GOOD, DUPLICATES, POISON, KEYS = 60, 10, 5, 12
MAX_WAVES = 6


def records_by_outcome(metrics: dict[Any, float], binding: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for (name, labels), value in metrics.items():
        labelled = dict(labels)
        if name == "restate_stream_records_total" and labelled["binding"] == binding:
            out[(labelled["outcome"], labelled["cause"])] = value
    return out


def envelope(i: int) -> bytes:
    return cloudevent(f"ev-{i}", "tally", "test", "2026-11-30T00:00:00Z", {"n": i})


async def test_worker_metrics_count_each_outcome_across_two_processes(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    stack = restate_stream_stack
    run = uuid.uuid4().hex[:8]
    topic, dlq, binding = f"tally-{run}", f"tally-{run}.dlq", f"tally-{run}"
    worker_port, metrics_port, exporter_port = free_ports(3)
    path = tmp_path / "bindings.yaml"
    path.write_text(
        f"""\
restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}
kafka: {{clusters: {{c-{run}: {{bootstrap.servers: "{stack.bootstrap_servers}"}}}}}}
topics: {{{topic}: {{cluster: c-{run}, partitions: 4}}}}
worker:
  app: tests.integration.metrics_app:app
  uri: http://127.0.0.1:{worker_port}
  processes: 2
  metrics_port: {metrics_port}
bindings:
  - {{name: {binding}, topic: {topic}, handler: MetricsTally/add, dedupe: true,
      dead_letter: {dlq}, start: earliest}}
"""
    )
    spec = load_bindings(path)
    assert spec.worker is not None and spec.worker.metrics_port == metrics_port
    records = [Record(f"{run}-k{i % KEYS}", envelope(i)) for i in range(GOOD)]
    records += [Record(f"{run}-k{i % KEYS}", envelope(i)) for i in range(DUPLICATES)]
    records += [Record(f"{run}-k{i % KEYS}", b"{not json") for i in range(POISON)]
    TopicAdmin(stack.bootstrap_servers).create_topic(topic, 4)
    await asyncio.to_thread(produce_records, stack.bootstrap_servers, topic, records)

    worker = WorkerProcess(
        spec.worker.app,
        tmp_path / "worker.log",
        port=worker_port,
        processes=2,
        cwd=REPO,
        bindings=path,
        metrics_port=metrics_port,
    )
    worker.start(timeout=60)
    exporter: subprocess.Popen[str] | None = None
    try:
        # Over h2 Restate multiplexes every invocation on a few long-lived connections, which
        # may all have been accepted by one serving process (the kernel picks). Over HTTP/1.1
        # each in-flight invocation has its own connection, so both processes serve.
        await restate_admin.register_deployment(worker.uri, http1=True)
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()

        async def totals() -> dict[str, Any]:
            every = await object_state(restate_admin, "MetricsTally", "total")
            return {k: v for k, v in every.items() if k.startswith(run)}

        async def pids_served() -> set[int]:
            pids = await object_state(restate_admin, "MetricsTally", "pids")
            return {pid for k, each in pids.items() if k.startswith(run) for pid in each}

        # Connections stay open between waves; more good records until both have served.
        good = GOOD
        for wave in range(MAX_WAVES):
            if wave:
                more = [Record(f"{run}-k{i % KEYS}", envelope(i)) for i in range(good, good + GOOD)]
                await asyncio.to_thread(produce_records, stack.bootstrap_servers, topic, more)
                good += GOOD
            want = sum(range(good))
            await wait_until(totals, lambda t, w=want: sum(t.values()) >= w, timeout=180)  # type: ignore[misc]
            if len(await pids_served()) == 2:
                break
        served = await pids_served()
        assert len(served) == 2, f"both serving processes applied records: {served}"

        labels = (("binding", binding), ("topic", topic))

        def counted(m: dict[Any, float]) -> dict[str, Any]:
            # Every count asserted, from one scrape: a scrape may fall between two of the
            # increments one record makes (outcome, then decode failure), so wait for all.
            return {
                "records_total": records_by_outcome(m, binding),
                "decode_failures": m.get(("restate_stream_decode_failures_total", labels)),
                "handler_runs": m.get(
                    ("restate_stream_handler_duration_seconds_count", (labels[0],))
                ),
                "dead_letter_acks": m.get(
                    ("restate_stream_published_records_total", (("topic", dlq),))
                ),
            }

        expected = {
            "records_total": {
                ("applied", ""): good,
                ("deduplicated", ""): DUPLICATES,
                ("dead_lettered", "DecodeError"): POISON,
            },
            "decode_failures": POISON,
            "handler_runs": good,
            "dead_letter_acks": POISON,
        }
        metrics = await wait_until(
            lambda: asyncio.to_thread(scrape_metrics, metrics_port),
            lambda m: counted(m) == expected,
            timeout=60,
            describe=lambda m: f"{counted(m)} (expected {expected})",
        )
        assert metrics[("restate_stream_worker_processes", ())] >= 3  # main + 2 serving

        # Dead letters follow the CloudEvents Kafka binding (structured mode).
        consumer = Consumer(
            {
                "bootstrap.servers": stack.bootstrap_servers,
                "group.id": f"check-{run}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([dlq])
        try:
            message = None
            deadline = time.monotonic() + 60  # joining the group (a rebalance) can take 10 s+
            while message is None or message.error() is not None:
                assert time.monotonic() < deadline, f"no dead letter read from {dlq} in 60 s"
                message = await asyncio.to_thread(consumer.poll, 1.0)
            assert ("content-type", b"application/cloudevents+json") in (message.headers() or [])
        finally:
            consumer.close()

        # The status exporter: the group has caught up; five dead letters, none resolved.
        exporter = subprocess.Popen(
            [*CLI, "metrics", "-f", str(path), "--port", str(exporter_port)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert wait_until_listening(
            exporter_port, timeout=60, alive=lambda: exporter.poll() is None
        )
        unresolved = (("binding", binding), ("resolved", "false"))
        active = (("binding", binding), ("state", "active"))

        def exported(m: dict[Any, float]) -> dict[str, Any]:
            lag = {
                dict(lb)["partition"]: v
                for (n, lb), v in m.items()
                if n == "restate_stream_consumer_lag" and ("binding", binding) in lb
            }
            return {
                "up": m.get(("restate_stream_status_up", ())),
                "lag": lag,
                "dead_letters": m.get(("restate_stream_dead_letters", unresolved)),
                "active": m.get(("restate_stream_binding_state", active)),
            }

        # One scrape shows all of it: every partition's lag 0 (an exporter that failed to read
        # the lag would show none), the five dead letters, the binding active.
        settled = {"up": 1, "lag": dict.fromkeys("0123", 0), "dead_letters": POISON, "active": 1}
        await wait_until(
            lambda: asyncio.to_thread(scrape_metrics, exporter_port),
            lambda m: exported(m) == settled,
            timeout=60,
            describe=lambda m: f"{exported(m)} (expected {settled})",
        )
    finally:
        if exporter is not None:
            os.killpg(exporter.pid, signal.SIGTERM)
            exporter.wait(10)
        worker.stop()
        await drop_cluster(restate_admin, f"c-{run}")

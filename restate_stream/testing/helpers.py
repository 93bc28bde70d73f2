"""Helpers for tests against the real engines: serve an app, produce records, poll state."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from connectors import Record, produce_records
from connectors.consume import ConsumedRecord, end_offsets, read_topic
from restate_stream._util.poll import PollTimeout, apoll, poll
from restate_stream.batch import BatchRunner
from restate_stream.bindings import BindingsFile
from restate_stream.control.admin import AdminClient, Deployment, sql_literal
from restate_stream.runtime.serving import BackgroundAppServer
from restate_stream.runtime.worker import WorkerProcess

T = TypeVar("T")
Samples: TypeAlias = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Prometheus samples by (name, sorted label pairs)."""


@dataclass(frozen=True)
class ServedApp:
    server: BackgroundAppServer
    deployment: Deployment

    @property
    def uri(self) -> str:
        return self.server.uri


RestateApp: TypeAlias = Callable[[Any], AbstractAsyncContextManager[ServedApp]]
"""The `restate_app` fixture: `async with restate_app(app) as served:` serves and registers."""


@asynccontextmanager
async def serve_app(app: Any, admin: AdminClient) -> AsyncIterator[ServedApp]:
    """Serve `app` in-process on a free port and register it as a Restate deployment."""
    server = BackgroundAppServer(app)
    await asyncio.to_thread(server.start)  # stops what it started if it fails
    try:
        deployment = await admin.register_deployment(server.uri, force=True)
        yield ServedApp(server, deployment)
    finally:
        await asyncio.to_thread(server.stop)


def produce_json(bootstrap_servers: str, topic: str, records: Iterable[tuple[str, Any]]) -> int:
    """Produce (key, value) pairs with the value JSON-encoded, in order, waiting for acks."""
    return produce_records(
        bootstrap_servers,
        topic,
        (Record(key, json.dumps(value)) for key, value in records),
    )


async def object_state(
    admin: AdminClient, service: str, state_key: str, *, object_key: str | None = None
) -> dict[str, Any]:
    """JSON state `state_key` of every object of `service` (or one), by object key."""
    where = f"service_name = {sql_literal(service)} AND key = {sql_literal(state_key)}"
    if object_key is not None:
        where += f" AND service_key = {sql_literal(object_key)}"
    rows = await admin.query(f"SELECT service_key, value_utf8 FROM state WHERE {where}")
    return {row["service_key"]: json.loads(row["value_utf8"]) for row in rows}


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.25,
    describe: Callable[[T], str] = repr,
) -> T:
    """Call `probe` until `done(result)`; on timeout fail (a TimeoutError) with the last
    result described."""
    what = f"{getattr(probe, '__name__', 'probe')}() to pass the check"
    return await apoll(
        probe, until=done, what=what, timeout=timeout, interval=interval, describe=describe
    )


async def topic_records(
    bootstrap_servers: str, topic: str, *, at_least: int = 0, timeout: float = 60.0
) -> list[ConsumedRecord]:
    """Every record on `topic` (partition, then offset order) once there are `at_least`."""

    async def count() -> int:
        ends = await asyncio.to_thread(end_offsets, bootstrap_servers, topic)
        return sum(ends.values())

    await wait_until(count, lambda n: n >= at_least, timeout=timeout)
    return await asyncio.to_thread(read_topic, bootstrap_servers, topic)


async def drop_cluster(admin: AdminClient, cluster: str) -> None:
    """Delete a Kafka cluster and its subscriptions (a forced cluster delete leaves them)."""
    for sub in await admin.list_subscriptions():
        if sub.source.startswith(f"kafka://{cluster}/"):
            await admin.delete_subscription(sub.id)
    if await admin.get_kafka_cluster(cluster) is not None:
        await admin.delete_kafka_cluster(cluster, force=True)


def wait_exit(worker: WorkerProcess, timeout: float = 60.0) -> int | None:
    """The exit status of a started worker once it has exited, or None if it still runs
    after `timeout` seconds (for a worker expected to die by itself, e.g. a fault hook)."""
    process = worker.process
    if process is None:
        raise ValueError(f"worker {worker.uri} was never started")
    try:
        poll(lambda: not process.running(), what=f"worker {worker.uri} to exit", timeout=timeout)
    except PollTimeout:
        return None
    return process.returncode


@asynccontextmanager
async def batch_deliveries(spec: BindingsFile) -> AsyncIterator[BatchRunner]:
    """Run the batched bindings of `spec` in this process, as a worker does next to the app:
    their consumers read the topics and send batches through Restate's ingress until exit.
    `spec`: as the worker binds it (runtime/bound.py `with_high_water` marks the targets
    that keep a high-water)."""
    runner = BatchRunner(spec)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


def scrape_metrics(port: int, host: str = "127.0.0.1") -> Samples:
    """The samples a /metrics endpoint (a worker's, the status exporter's) serves now, by name
    and sorted labels: `samples[("restate_stream_status_up", ())]`."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

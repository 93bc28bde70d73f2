"""Durable publish throughput: many concurrent Restate invocations, one Publisher.publish each.

Candidate: fire-and-forget sends through Restate's ingress to a virtual object handler (in a
separate hypercorn worker process) that publishes one CloudEvents record with
`Publisher.publish` (produce inside `ctx.run`, broker ack journaled). The rate runs from the
first send to the last invocation completed (Restate's `completed_at`): a publish counts once
its ack is journaled, not merely once the record is on the topic (that rate is printed too).
Baseline: the same records (same envelope) produced by ConfluentProducer from as many
concurrent coroutines, each awaiting its ack; aiokafka's adapter is a second baseline.
Every round writes a fresh topic; rounds alternate baseline and candidate; medians compared.

    .venv/bin/python -m benchmarks.publish_throughput [--records 5000] [--keys 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
from confluent_kafka import Consumer, TopicPartition

from benchmarks.publish_apps import BOOTSTRAP_ENV
from connectors import KafkaProducer, TopicAdmin, create_producer
from restate_stream.admin import AdminClient, sql_literal
from restate_stream.formats import cloudevent
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.stack.install import KAFKA_VERSION
from restate_stream.worker import WorkerProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
OBJECT, HANDLER = "BenchPublisher", "publish"
# httpx's pool does work per waiting request on every event: one client for 200 in-flight
# sends cost ~9 ms of driver CPU per send here. Small pools keep the load generator cheap.
LANES_PER_CLIENT = 10


def value(i: int) -> dict[str, Any]:
    return {"seq": i, "driver": f"driver-{i % 97}", "lat": 52.37 + i * 1e-6, "lon": 4.89}


async def in_lanes(records: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """`concurrency` coroutines, each doing its share of records one after another."""

    async def lane(start: int) -> None:
        for i in range(start, records, concurrency):
            await one(i)

    await asyncio.gather(*(lane(n) for n in range(concurrency)))


async def raw_rate(
    producer: KafkaProducer, topic: str, records: int, keys: int, concurrency: int
) -> float:
    """Records/s from the first send to the last ack, building the publisher's envelope."""

    async def one(i: int) -> None:
        now = datetime.now(UTC).isoformat()
        payload = cloudevent(str(uuid.uuid4()), f"{topic}.published", "bench", now, value(i))
        await producer.send(topic, payload, f"key-{i % keys}".encode())

    start = time.perf_counter()
    await in_lanes(records, concurrency, one)
    return records / (time.perf_counter() - start)


def topic_end(consumer: Consumer, topic: str, partitions: int) -> int:
    """Records on the topic: the sum of its partitions' high watermarks."""
    return sum(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
        for p in range(partitions)
    )


async def restate_rate(
    clients: Sequence[httpx.AsyncClient],
    admin: AdminClient,
    consumer: Consumer,
    topic: str,
    partitions: int,
    prefix: str,
    records: int,
    keys: int,
    concurrency: int,
) -> tuple[float, float]:
    """(completed/s, landed/s): first send to last invocation completed / last record landed."""

    async def one(i: int) -> None:
        body = {"topic": topic, "value": value(i)}
        http = clients[i % concurrency // LANES_PER_CLIENT]  # the lane's own client
        response = await http.post(f"/{OBJECT}/{prefix}{i % keys}/{HANDLER}/send", json=body)
        response.raise_for_status()

    started_wall, started = time.time(), time.perf_counter()
    await in_lanes(records, concurrency, one)
    # Records land before their invocations complete: watch the topic first, then Restate.
    while await asyncio.to_thread(topic_end, consumer, topic, partitions) < records:
        await asyncio.sleep(0.02)
    landed = time.perf_counter() - started
    where = (
        f"target_service_name = '{OBJECT}' AND target_service_key LIKE {sql_literal(prefix + '%')}"
    )
    count_sql = f"SELECT count(*) AS n FROM sys_invocation WHERE {where} AND status = 'completed'"
    while (await admin.query(count_sql))[0]["n"] < records:
        await asyncio.sleep(0.1)
    row = (
        await admin.query(
            "SELECT max(completed_at) AS last, "
            "sum(CASE WHEN completion_result = 'success' THEN 0 ELSE 1 END) AS failed "
            f"FROM sys_invocation WHERE {where}"
        )
    )[0]
    if row["failed"]:
        raise SystemExit(f"{row['failed']} publish invocations failed; see the worker log")
    on_topic = await asyncio.to_thread(topic_end, consumer, topic, partitions)
    if on_topic != records:
        raise SystemExit(f"{on_topic} records on {topic}, expected {records} (duplicates?)")
    last = datetime.fromisoformat(row["last"])
    last = last if last.tzinfo else last.replace(tzinfo=UTC)  # Restate reports UTC
    return records / (last.timestamp() - started_wall), records / landed


async def run(records: int, keys: int, rounds: int, partitions: int, concurrency: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-publish-"))
    with LocalStack(home, StackPorts.free()) as stack:
        bootstrap = stack.bootstrap_servers

        def fresh(name: str) -> str:
            # A short-lived admin client: none outlives the broker to log reconnect noise.
            TopicAdmin(bootstrap).create_topic(name, partitions)
            return name

        worker = WorkerProcess(
            "benchmarks.publish_apps:app",
            home / "worker.log",
            cwd=REPO_ROOT,
            env={BOOTSTRAP_ENV: bootstrap},
        )
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
        confluent = create_producer({"bootstrap.servers": bootstrap}, "confluent")
        aio = create_producer({"bootstrap.servers": bootstrap}, "aiokafka")
        limits = httpx.Limits(max_connections=LANES_PER_CLIENT)
        worker.start()
        try:
            async with AdminClient(stack.admin_url) as admin, AsyncExitStack() as clients_open:
                clients = [
                    await clients_open.enter_async_context(
                        httpx.AsyncClient(base_url=stack.ingress_url, limits=limits, timeout=60)
                    )
                    for _ in range(-(-concurrency // LANES_PER_CLIENT))
                ]
                await admin.register_deployment(worker.uri)
                server = (await admin.version()).get("version", "?")
                # Warm-up: producers connected, worker's publisher created, ingress connections.
                warm = min(records, 500)
                await raw_rate(confluent, fresh("warm-confluent"), warm, keys, concurrency)
                await raw_rate(aio, fresh("warm-aiokafka"), warm, keys, concurrency)
                args = (partitions, "warm-", warm, keys, concurrency)
                await restate_rate(clients, admin, consumer, fresh("warm-restate"), *args)
                raw: list[float] = []
                raw_aio: list[float] = []
                done: list[float] = []
                landed: list[float] = []
                for r in range(1, rounds + 1):
                    topic = fresh(f"raw-confluent-{r}")
                    raw.append(await raw_rate(confluent, topic, records, keys, concurrency))
                    print(f"round {r}: raw confluent   {raw[-1]:>9,.0f} records/s", flush=True)
                    topic = fresh(f"raw-aiokafka-{r}")
                    raw_aio.append(await raw_rate(aio, topic, records, keys, concurrency))
                    print(f"round {r}: raw aiokafka    {raw_aio[-1]:>9,.0f} records/s", flush=True)
                    args = (partitions, f"r{r}-", records, keys, concurrency)
                    rates = await restate_rate(
                        clients, admin, consumer, fresh(f"restate-{r}"), *args
                    )
                    done.append(rates[0])
                    landed.append(rates[1])
                    print(
                        f"round {r}: restate publish {done[-1]:>9,.0f} publishes/s completed "
                        f"({landed[-1]:,.0f}/s landed)",
                        flush=True,
                    )
        finally:
            await confluent.close()
            await aio.close()
            consumer.close()
            worker.stop()
    shutil.rmtree(home, ignore_errors=True)
    raw_m, aio_m = statistics.median(raw), statistics.median(raw_aio)
    done_m, landed_m = statistics.median(done), statistics.median(landed)
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Restate {server}, Kafka {KAFKA_VERSION}, "
        f"confluent-kafka {importlib.metadata.version('confluent-kafka')} (librdkafka "
        f"{confluent_kafka.libversion()[0]}), aiokafka {importlib.metadata.version('aiokafka')}, "
        f"restate-sdk {importlib.metadata.version('restate-sdk')}"
    )
    print(
        f"records: {records}, keys: {keys}, partitions: {partitions}, "
        f"concurrency: {concurrency}, rounds: {rounds}"
    )
    print(f"raw ConfluentProducer, acked (median):        {raw_m:>9,.0f} records/s")
    print(f"raw AioKafkaProducer, acked (median):         {aio_m:>9,.0f} records/s")
    print(f"restate durable publish, completed (median):  {done_m:>9,.0f} publishes/s")
    print(f"restate durable publish, landed (median):     {landed_m:>9,.0f} records/s")
    print(f"ratio restate completed / raw confluent:      {done_m / raw_m:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.records, args.keys, args.rounds, args.partitions, args.concurrency))


if __name__ == "__main__":
    main()

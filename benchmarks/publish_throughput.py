"""Durable publish throughput: Publisher.publish from Restate handlers vs a raw producer.

Candidates, all in a separate hypercorn worker process, every record one CloudEvents publish
with `Publisher.publish` (produce inside `ctx.run`, broker ack journaled):

- publish-in-handler, the framework's real use (consume -> handle -> publish): N trigger
  records over K keys are produced to a fresh trigger topic up front, then a binding (a
  bindings file applied with apply_bindings) subscribes the bound keyed handler
  `BenchRelay/relay`, which publishes each record to `<trigger>.out`. Rate: first invocation
  created to last completed (sys_invocation of that subscription), as e2e_throughput measures.
- publish_many: the same binding shape, but each trigger record asks the bound handler
  `BenchRelayMany/relay_many` for `--fan-out` records (default 100), published with ONE
  `Publisher.publish_many` (one `ctx.run`, all acks journaled together): `records / fan_out`
  invocations produce the same `records` output records. Rate: output records over first
  invocation created to last completed.
- no-publish handler: the same shape (`BenchSink/consume`, bound, keyed, same records) doing
  nothing, to isolate the cost of the durable publish from the subscription's own.
- HTTP ingress: fire-and-forget sends to `BenchPublisher/publish`, first send to last
  completed. Kept as a reference only: the Python httpx driver caps it (~400 sends/s here),
  so it measures the driver rather than the framework.

Baseline: the same records (same envelope) produced by ConfluentProducer from `concurrency`
coroutines each awaiting its ack (aiokafka's adapter is a second baseline). A subscription
runs one invocation per key at a time, so concurrency defaults to the number of keys.
Every round uses fresh topics; rounds alternate baseline and candidates; medians compared.

    .venv/bin/python -m benchmarks.publish_throughput [--records 5000] [--keys 200] [--rounds 3]
        [--fan-out 100]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
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

import confluent_kafka
import httpx
from confluent_kafka import Consumer, TopicPartition

from benchmarks.common import remove_scratch
from benchmarks.publish_apps import BOOTSTRAP_ENV, OUTPUT_SUFFIX, value
from connectors import KafkaProducer, Record, TopicAdmin, create_producer, produce_records
from restate_stream._util.poll import apoll
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.control.apply import apply_bindings
from restate_stream.control.plan import CreateSubscription
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.stack.install import KAFKA_VERSION

REPO_ROOT = Path(__file__).resolve().parents[1]
OBJECT, HANDLER = "BenchPublisher", "publish"
RELAY, RELAY_MANY, SINK = "BenchRelay/relay", "BenchRelayMany/relay_many", "BenchSink/consume"
CLUSTER = "bench"
# httpx's pool does work per waiting request on every event: one client for 200 in-flight
# sends cost ~9 ms of driver CPU per send here. Small pools keep the load generator cheap.
LANES_PER_CLIENT = 10


async def _completed(admin: AdminClient, count_sql: str, records: int) -> None:
    """Wait until `count_sql` counts `records` invocations (a hang fails the run)."""

    async def count() -> int:
        n: int = (await admin.query(count_sql))[0]["n"]
        return n

    await apoll(
        count,
        until=lambda n: n >= records,
        what=f"{records} completed invocations",
        timeout=600,
        interval=0.1,
    )


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


def bindings_yaml(bootstrap: str, bindings: Sequence[tuple[str, str, str]]) -> str:
    """A bindings file: the bench cluster and (name, topic, Service/handler) JSON bindings."""
    lines = ["kafka:", "  clusters:", f'    {CLUSTER}: {{bootstrap.servers: "{bootstrap}"}}']
    lines.append("bindings:")
    for name, topic, handler in bindings:
        lines += [
            f"  - name: {name}",
            f"    topic: {topic}",
            f"    handler: {handler}",
            "    format: json",
            "    start: earliest",
        ]
    return "\n".join(lines) + "\n"


async def subscription_rate(
    admin: AdminClient,
    consumer: Consumer,
    home: Path,
    bootstrap: str,
    name: str,
    handler: str,
    records: int,
    keys: int,
    partitions: int,
    fan_out: int = 1,
) -> float:
    """Records/s of one binding over `records` records (trigger records, or for RELAY_MANY
    output records: `records / fan_out` triggers each asking for `fan_out`).

    From the first invocation created to the last completed, as Restate saw it. The
    subscription is created by applying a one-binding file, and deleted afterwards.
    """
    admin_client = TopicAdmin(bootstrap)
    admin_client.create_topic(name, partitions)
    publishes = handler in (RELAY, RELAY_MANY)
    if publishes:
        admin_client.create_topic(name + OUTPUT_SUFFIX, partitions)
    del admin_client  # short-lived: none outlives the broker to log reconnect noise
    invocations = records
    if handler == RELAY_MANY:
        invocations = records // fan_out
        asks = (
            {"first": t * fan_out, "fan_out": fan_out, "keys": keys} for t in range(invocations)
        )
        triggers = (Record(f"key-{t % keys}", json.dumps(ask)) for t, ask in enumerate(asks))
    else:
        triggers = (Record(f"key-{i % keys}", json.dumps(value(i))) for i in range(records))
    await asyncio.to_thread(produce_records, bootstrap, name, triggers)
    path = home / f"{name}.yaml"
    path.write_text(bindings_yaml(bootstrap, [(name, name, handler)]))
    spec = load_bindings(path)
    _, report = await apply_bindings(spec, admin)
    if not report.ok:
        raise SystemExit(report.render())
    (sub_id,) = (o.detail for o in report.outcomes if isinstance(o.change, CreateSubscription))
    where = f"invoked_by_subscription_id = {sql_literal(sub_id)}"
    count_sql = f"SELECT count(*) AS n FROM sys_invocation WHERE {where} AND status = 'completed'"
    try:
        await _completed(admin, count_sql, invocations)
        row = (
            await admin.query(
                "SELECT min(created_at) AS first, max(completed_at) AS last, count(*) AS n, "
                "sum(CASE WHEN completion_result = 'success' THEN 0 ELSE 1 END) AS failed "
                f"FROM sys_invocation WHERE {where}"
            )
        )[0]
    finally:
        await admin.delete_subscription(sub_id)
    if row["failed"] or row["n"] != invocations:
        raise SystemExit(f"{name}: {row['n']} invocations, {row['failed']} failed; see worker log")
    if publishes:
        out = await asyncio.to_thread(topic_end, consumer, name + OUTPUT_SUFFIX, partitions)
        if out != records:
            raise SystemExit(f"{out} records on {name}{OUTPUT_SUFFIX}, expected {records}")
    first = datetime.fromisoformat(row["first"])
    last = datetime.fromisoformat(row["last"])
    if handler == RELAY_MANY:
        # Every output record is inside the span (the first invocation's too).
        return records / (last - first).total_seconds()
    return (records - 1) / (last - first).total_seconds()


async def http_rate(
    clients: Sequence[httpx.AsyncClient],
    admin: AdminClient,
    consumer: Consumer,
    topic: str,
    partitions: int,
    prefix: str,
    records: int,
    keys: int,
    concurrency: int,
) -> float:
    """Publishes/s driven through the ingress: first send to last invocation completed."""

    async def one(i: int) -> None:
        body = {"topic": topic, "value": value(i)}
        http = clients[i % concurrency // LANES_PER_CLIENT]  # the lane's own client
        response = await http.post(f"/{OBJECT}/{prefix}{i % keys}/{HANDLER}/send", json=body)
        response.raise_for_status()

    started_wall = time.time()
    await in_lanes(records, concurrency, one)
    where = (
        f"target_service_name = '{OBJECT}' AND target_service_key LIKE {sql_literal(prefix + '%')}"
    )
    count_sql = f"SELECT count(*) AS n FROM sys_invocation WHERE {where} AND status = 'completed'"
    await _completed(admin, count_sql, records)
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
    return records / (last.timestamp() - started_wall)


async def run(
    records: int,
    keys: int,
    rounds: int,
    partitions: int,
    concurrency: int,
    http_records: int,
    fan_out: int,
) -> None:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-publish-"))
    with LocalStack(home, StackPorts.free()) as stack:
        bootstrap = stack.bootstrap_servers

        def fresh(name: str) -> str:
            # A short-lived admin client: none outlives the broker to log reconnect noise.
            TopicAdmin(bootstrap).create_topic(name, partitions)
            return name

        # The worker wraps the handlers its bindings file names; each run's subscription
        # comes from a one-binding file naming the same handler on that run's fresh topic.
        worker_bindings = home / "worker-bindings.yaml"
        worker_bindings.write_text(
            bindings_yaml(
                bootstrap,
                [
                    ("relay", "relay", RELAY),
                    ("relay-many", "relay-many", RELAY_MANY),
                    ("sink", "sink", SINK),
                ],
            )
        )
        worker = WorkerProcess(
            "benchmarks.publish_apps:app",
            home / "worker.log",
            cwd=REPO_ROOT,
            bindings=worker_bindings,
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

                async def bound(name: str, handler: str, n: int) -> float:
                    args = (bootstrap, name, handler, n, keys, partitions, fan_out)
                    return await subscription_rate(admin, consumer, home, *args)

                # Warm-up: producers connected, cluster registered, __consumer_offsets made,
                # the worker's publisher created, ingress connections open.
                warm = min(records, 500)
                await raw_rate(confluent, fresh("warm-confluent"), warm, keys, concurrency)
                await raw_rate(aio, fresh("warm-aiokafka"), warm, keys, concurrency)
                await bound("warm-relay", RELAY, warm)
                await bound("warm-relay-many", RELAY_MANY, fan_out * max(1, warm // fan_out))
                await bound("warm-sink", SINK, warm)
                if http_records:
                    args = (partitions, "warm-", warm, keys, concurrency)
                    await http_rate(clients, admin, consumer, fresh("warm-http"), *args)
                raw: list[float] = []
                raw_aio: list[float] = []
                relayed: list[float] = []
                batched: list[float] = []
                sunk: list[float] = []
                http: list[float] = []
                for r in range(1, rounds + 1):
                    topic = fresh(f"raw-confluent-{r}")
                    raw.append(await raw_rate(confluent, topic, records, keys, concurrency))
                    print(f"round {r}: raw confluent       {raw[-1]:>9,.0f} records/s", flush=True)
                    topic = fresh(f"raw-aiokafka-{r}")
                    raw_aio.append(await raw_rate(aio, topic, records, keys, concurrency))
                    print(
                        f"round {r}: raw aiokafka        {raw_aio[-1]:>9,.0f} records/s",
                        flush=True,
                    )
                    # Alternate which bound candidate goes first, so neither always follows
                    # the baseline.
                    order = [
                        ("relay", RELAY, relayed, "publish-in-handler"),
                        ("relay-many", RELAY_MANY, batched, f"publish_many x{fan_out}"),
                        ("sink", SINK, sunk, "no-publish handler"),
                    ]
                    for label, handler, rates, what in order if r % 2 else order[::-1]:
                        rates.append(await bound(f"{label}-{r}", handler, records))
                        print(f"round {r}: {what:<19} {rates[-1]:>9,.0f} records/s", flush=True)
                    if http_records:
                        args = (partitions, f"r{r}-", http_records, keys, concurrency)
                        http.append(
                            await http_rate(clients, admin, consumer, fresh(f"http-{r}"), *args)
                        )
                        print(
                            f"round {r}: http ingress        {http[-1]:>9,.0f} publishes/s",
                            flush=True,
                        )
        finally:
            await confluent.close()
            await aio.close()
            consumer.close()
            worker.stop()
    shutil.rmtree(home, ignore_errors=True)
    raw_m, aio_m = statistics.median(raw), statistics.median(raw_aio)
    relay_m, sink_m = statistics.median(relayed), statistics.median(sunk)
    many_m = statistics.median(batched)
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
        f"concurrency: {concurrency}, rounds: {rounds}, http records: {http_records}, "
        f"publish_many fan-out: {fan_out} ({records // fan_out} invocations)"
    )
    print(f"raw ConfluentProducer, acked (median):          {raw_m:>9,.0f} records/s")
    print(f"raw AioKafkaProducer, acked (median):           {aio_m:>9,.0f} records/s")
    print(f"subscription, publish-in-handler (median):      {relay_m:>9,.0f} publishes/s")
    many_label = f"subscription, publish_many x{fan_out} (median):"
    print(f"{many_label:<48}{many_m:>9,.0f} publishes/s")
    print(f"subscription, no-publish handler (median):      {sink_m:>9,.0f} records/s")
    if http:
        http_m = statistics.median(http)
        print(f"http ingress publish, driver-bound (median):    {http_m:>9,.0f} publishes/s")
    print(f"ratio publish-in-handler / raw confluent:       {relay_m / raw_m:>9.4f}")
    print(f"ratio publish-in-handler / no-publish handler:  {relay_m / sink_m:>9.4f}")
    print(f"ratio publish_many / raw confluent:             {many_m / raw_m:>9.4f}")
    print(f"ratio publish_many / publish-in-handler:        {many_m / relay_m:>9.4f}")
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--concurrency", type=int, help="raw producer and HTTP lanes (default: --keys)"
    )
    parser.add_argument(
        "--http-records",
        type=int,
        default=2_000,
        help="records per round for the HTTP ingress reference line (0 skips it)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fan-out", type=int, default=100, help="records per publish_many invocation"
    )
    args = parser.parse_args()
    if args.fan_out < 1 or args.records % args.fan_out:
        parser.error(f"--records ({args.records}) must be a multiple of --fan-out ({args.fan_out})")
    concurrency = args.concurrency or args.keys
    asyncio.run(
        run(
            args.records,
            args.keys,
            args.rounds,
            args.partitions,
            concurrency,
            args.http_records,
            args.fan_out,
        )
    )


if __name__ == "__main__":
    main()

"""restate-server's CPU per record for one invocation per record, by how the invocations reach it.

The same 100-key topic's records become invocations of the bound counter (an exclusive object
handler keeping a high-water, as `delivery: consumer` sends them: no idempotency key, the
`kafka.*` headers), each key's records one after another (a key's next request is written only
once its previous one was answered), sent from this process by:

- *http1*, *http1-64*: HTTP/1.1 keep-alive, one request at a time on each of 16 (64)
  connections (the consumer's client);
- *http1-pipelined*: HTTP/1.1, up to `--depth` requests (of distinct keys) written at once on
  each of 4 connections, their answers read in order;
- *h2c*: HTTP/2 with prior knowledge on one connection, one stream per key in flight (httpx);
- *h2c-raw*: the same through the `h2` library alone: the requests and answers of all the
  keys in flight share each `write()` and `read()` (what many requests per write would save);
- *idem-send*, *idem-send-attach*, *idem-call*: every key in flight over aiohttp, each request
  with an idempotency key as batched sends carry: acceptance only (202); acceptance then the
  attach that answers at completion (how a batched binding's completion pacing learns it);
  a call, answered at completion (one request where pacing makes two); *idem-bare-call*: the
  same call without an idempotency key (what keeping one costs Restate);
- *subscription*: Restate's Kafka subscription over the same topic (the reference).

Every variant is counted the same way (the counters' state, polled every 0.1 s); restate-server's
CPU while idle with that polling (measured first, per second) times each variant's span is
subtracted, so a slower variant is not charged more polling per record. Rounds rotate the
variants; restate-server's CPU s per 1,000 records (net of that), this process's (the client,
with the counting), and the rate, are printed per round and as medians. Variants' rates are
the client's, from this one Python process.

    .venv/bin/python -m benchmarks.ingress_cost [--records 5000] [--rounds 2] [--depth 16]
        [--variants http1-64,h2c-raw,subscription]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import h2.config
import h2.connection
import h2.events
import httpx

from benchmarks import e2e_throughput as e2e
from benchmarks.apps import CONSUMER_HANDLERS
from benchmarks.common import (
    SELF,
    CostMeter,
    machine,
    produce_keyed,
    reading_consumer,
    remove_scratch,
)
from connectors.group_consumer import PolledRecord
from restate_stream.batch.ingress_client import IngressClient
from restate_stream.batch.sends import RecordShape, Request
from restate_stream.bindings import Binding, load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

TOPIC = "bench-ingress"
KEYS = 100
Sender = Callable[[str, list[deque[Request]]], Awaitable[None]]


def read_topic(bootstrap: str, expected: int) -> list[PolledRecord]:
    consumer = reading_consumer(bootstrap, "bench-read")
    consumer.subscribe([TOPIC])
    out: list[PolledRecord] = []
    try:
        while len(out) < expected:
            for m in consumer.consume(1000, 1.0):
                if m.error() is None:
                    out.append(
                        PolledRecord(
                            TOPIC,
                            m.partition() or 0,
                            m.offset() or 0,
                            m.timestamp()[1],
                            m.key(),
                            m.value(),
                            (),
                        )
                    )
    finally:
        consumer.close()
    return out


POLL = 0.1  # e2e_throughput's applied_rate polls the state this often


async def idle_cpu(admin: AdminClient, restate: int, seconds: float = 5.0) -> float:
    """restate-server's CPU seconds per second with nothing to do but the count's polling:
    subtracted from each variant over its span, so a slower variant is not charged more
    polling per record."""
    with CostMeter({"restate": restate}) as meter:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await e2e.counted(admin, e2e.CONSUMER_SERVICE)
            await asyncio.sleep(POLL)
    return meter.costs(1000)["restate"].cpu_per_1000 / seconds


def chains(binding: Binding, records: list[PolledRecord]) -> list[deque[Request]]:
    """Each key's requests in read order, built before the clock starts."""
    shape = RecordShape(dataclasses.replace(binding, keeps_high_water=True))
    return [
        deque(shape.request(key, [r]) for r in group) for key, group in shape.group(records).items()
    ]


async def http1(
    url: str, keys: list[deque[Request]], answers: list[float], connections: int = 16
) -> None:
    """`answers` gets the seconds from writing each request to its answer: with every key in
    flight, a key's next request waits for this, so it bounds the rate at keys / latency
    whatever the CPU."""
    client = IngressClient(url, connections=connections)
    slots = asyncio.Semaphore(connections)
    clock = time.perf_counter

    async def chain(requests: deque[Request]) -> None:
        for request in requests:
            async with slots:
                started = clock()
                answer = await client.post(request.path, request.body, request.headers)
                answers.append(clock() - started)
            assert answer.status in (200, 202), answer.text()

    try:
        await asyncio.gather(*(chain(c) for c in keys))
    finally:
        await client.close()


async def http1_ticked(url: str, keys: list[deque[Request]], tick: float) -> None:
    """http1 with every key in flight (100 connections), a key's next request held until the
    next shared tick: the requests of the keys answered meanwhile go out together, in one loop
    iteration (bursts, as a subscription's records reach Restate's log)."""
    client = IngressClient(url, connections=len(keys))
    loop = asyncio.get_running_loop()
    next_tick: asyncio.Future[None] = loop.create_future()

    async def ticker() -> None:
        nonlocal next_tick
        while True:
            await asyncio.sleep(tick)
            fired, next_tick = next_tick, loop.create_future()
            fired.set_result(None)

    async def chain(requests: deque[Request]) -> None:
        for request in requests:
            answer = await client.post(request.path, request.body, request.headers)
            assert answer.status in (200, 202), answer.text()
            await next_tick

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(chain(c) for c in keys))
    finally:
        ticking.cancel()
        await client.close()


def wire(host: str, request: Request) -> bytes:
    head = [f"POST /{request.path} HTTP/1.1", f"Host: {host}"]
    head.append(f"Content-Length: {len(request.body)}")
    head += [f"{k}: {v}" for k, v in request.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + request.body


async def http1_pipelined(url: str, keys: list[deque[Request]], depth: int, conns: int = 4) -> None:
    parts = urlsplit(url)
    ready: deque[deque[Request]] = deque(c for c in keys if c)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while ready:
                taken = [ready.popleft() for _ in range(min(depth, len(ready)))]
                writer.write(b"".join(wire(parts.netloc, c[0]) for c in taken))
                for c in taken:
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line[15:])
                    await reader.readexactly(length)
                    assert status in (200, 202), head
                    c.popleft()
                    if c:
                        ready.append(c)
                if not ready:
                    await asyncio.sleep(0)  # another connection may hand keys back
        finally:
            writer.close()

    while ready:
        await asyncio.gather(*(connection() for _ in range(conns)))


async def h2c(url: str, keys: list[deque[Request]]) -> None:
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(http1=False, http2=True, limits=limits, timeout=60) as client:

        async def chain(requests: deque[Request]) -> None:
            for r in requests:
                answer = await client.post(f"{url}/{r.path}", content=r.body, headers=r.headers)
                assert answer.status_code in (200, 202), answer.text
                assert answer.http_version == "HTTP/2", answer.http_version

        await asyncio.gather(*(chain(c) for c in keys))


async def h2c_raw(url: str, keys: list[deque[Request]]) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    connection = h2.connection.H2Connection(config)
    connection.initiate_connection()
    in_flight: dict[int, deque[Request]] = {}
    statuses: dict[int, bytes] = {}

    def post(chain: deque[Request]) -> None:
        request = chain[0]
        stream = connection.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":path", f"/{request.path}"),
            (":scheme", "http"),
            (":authority", parts.netloc),
            ("content-length", str(len(request.body))),
            *request.headers.items(),
        ]
        connection.send_headers(stream, headers)
        connection.send_data(stream, request.body, end_stream=True)
        in_flight[stream] = chain

    try:
        for chain in keys:
            if chain:
                post(chain)
        writer.write(connection.data_to_send())
        while in_flight:
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionError("the ingress closed the connection")
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    statuses[event.stream_id] = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    chain = in_flight.pop(event.stream_id)
                    status = statuses.pop(event.stream_id)
                    assert status in (b"200", b"202"), status
                    chain.popleft()
                    if chain:
                        post(chain)
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionError(f"stream {event.stream_id} reset: {event.error_code}")
            writer.write(connection.data_to_send())
    finally:
        writer.close()


async def idempotent(url: str, keys: list[deque[Request]], mode: str) -> None:
    """`mode`: send, send-attach or call; see the module's docstring."""
    run_id = uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=4 * len(keys))
    async with aiohttp.ClientSession(connector=connector) as client:

        async def chain(requests: deque[Request]) -> None:
            for n, request in enumerate(requests):
                idempotency_key = f"{run_id}-{n}"
                headers = dict(request.headers)
                if mode != "bare-call":
                    headers["idempotency-key"] = idempotency_key
                path = request.path
                if mode.endswith("call"):
                    path = path.removesuffix("/send")
                async with client.post(f"{url}/{path}", data=request.body, headers=headers) as a:
                    await a.read()
                    assert a.status in (200, 202), a.status
                if mode == "send-attach":
                    service, key, handler, _ = path.split("/")
                    attach = f"restate/invocation/{service}/{key}/{handler}/{idempotency_key}"
                    async with client.get(f"{url}/{attach}/attach") as a:
                        await a.read()
                        assert a.status == 200, a.status

        await asyncio.gather(*(chain(c) for c in keys))


VARIANTS = (
    "http1",
    "http1-64",
    "http1-100",
    "http1-ticked",
    "http1-pipelined",
    "h2c",
    "h2c-raw",
    "idem-send",
    "idem-send-attach",
    "idem-call",
    "idem-bare-call",
    "subscription",
)
TICK = 0.005  # http1-ticked: seconds between bursts


async def run(records: int, rounds: int, depth: int, variants: list[str]) -> None:
    if rounds * len(variants) > CONSUMER_HANDLERS:
        raise SystemExit(f"at most {CONSUMER_HANDLERS // len(variants)} rounds")
    home = Path(tempfile.mkdtemp(prefix="rs-bench-ingress-"))
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    client_cpu: dict[str, list[float]] = {v: [] for v in variants}
    with LocalStack(home, StackPorts.free()) as stack:
        produce_keyed(stack.bootstrap_servers, TOPIC, records, KEYS, 4)
        handlers = rounds * len(variants)
        bindings = e2e.BenchBindings(home / "bindings.yaml", stack, TOPIC, [], handlers)
        bindings.write()
        by_name = {b.name: b for b in load_bindings(bindings.path).bindings}
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=e2e.REPO_ROOT, bindings=bindings.path
        )
        worker.start()
        topic_records = read_topic(stack.bootstrap_servers, records)
        try:
            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                await admin.create_kafka_cluster(
                    "bench", {"bootstrap.servers": stack.bootstrap_servers}
                )
                assert stack.restate.process is not None and worker.process is not None
                restate = stack.restate.process.pid
                idle = await idle_cpu(admin, restate)
                print(f"restate-server idle, counted every {POLL}s: {idle:.4f} CPU s/s")
                slot = 0
                for r in range(rounds):
                    shift = r % len(variants)
                    for variant in variants[shift:] + variants[:shift]:
                        binding = by_name[f"consumer-counter-{slot}"]
                        start = time.perf_counter()
                        answers: list[float] = []  # an http1 variant's answer times
                        with CostMeter({"restate": restate, "client": SELF}) as meter:
                            rate = await one_round(
                                variant, admin, stack, binding, slot, topic_records, depth,
                                worker, answers,
                            )  # fmt: skip
                        slot += 1
                        span = time.perf_counter() - start
                        rates[variant].append(rate)
                        costs = meter.costs(records)
                        spent = costs["restate"].cpu_per_1000
                        cpu[variant].append(spent - idle * span * 1000 / records)
                        client_cpu[variant].append(costs["client"].cpu_per_1000)
                        answered = ""
                        if answers:
                            q = statistics.quantiles(answers, n=100)
                            answered = (
                                f", answered in p50 {q[49] * 1e3:.0f} ms p99 {q[98] * 1e3:.0f}"
                            )
                        print(
                            f"round {r + 1}: {variant:<16} {rate:>7,.0f} records/s, restate-server "
                            f"CPU s per 1,000: {cpu[variant][-1]:.3f}, client "
                            f"{client_cpu[variant][-1]:.3f}{answered} "
                            f"(load {os.getloadavg()[0]:.2f}, {time.strftime('%H:%M:%S')})",
                            flush=True,
                        )
        finally:
            worker.stop()
    print()
    print(machine())
    print(f"records: {records}, keys: {KEYS}, rounds: {rounds}, pipeline depth: {depth}")
    print("| variant | records/s | restate-server CPU s / 1,000 | client CPU s / 1,000 |")
    print("| --- | ---: | ---: | ---: |")
    for v in variants:
        print(
            f"| {v} | {statistics.median(rates[v]):,.0f} | {statistics.median(cpu[v]):.3f} "
            f"| {statistics.median(client_cpu[v]):.3f} |"
        )
    remove_scratch(home)


async def one_round(
    variant: str,
    admin: AdminClient,
    stack: LocalStack,
    binding: Binding,
    slot: int,
    topic_records: list[PolledRecord],
    depth: int,
    worker: WorkerProcess,
    answers: list[float],
) -> float:
    """One variant's rate, records applied per second; an http1 variant's answer times
    appended to `answers`."""
    service = e2e.BOUND_SERVICE if variant == "subscription" else e2e.CONSUMER_SERVICE
    keys = chains(binding, topic_records)
    before = await e2e.counted(admin, service)
    subscription = None
    if variant == "subscription":
        subscription = await admin.create_subscription(
            f"kafka://bench/{TOPIC}",
            f"service://{service}/count_{slot}",
            {"auto.offset.reset": "earliest", "group.id": f"bench-{uuid.uuid4().hex}"},
        )
        send: Awaitable[None] = asyncio.sleep(0)
    elif variant == "http1":
        send = http1(stack.ingress_url, keys, answers)
    elif variant == "http1-64":
        send = http1(stack.ingress_url, keys, answers, 64)
    elif variant == "http1-100":
        send = http1(stack.ingress_url, keys, answers, len(keys))
    elif variant == "http1-ticked":
        send = http1_ticked(stack.ingress_url, keys, TICK)
    elif variant == "http1-pipelined":
        send = http1_pipelined(stack.ingress_url, keys, depth)
    elif variant == "h2c-raw":
        send = h2c_raw(stack.ingress_url, keys)
    elif variant.startswith("idem-"):
        send = idempotent(stack.ingress_url, keys, variant.removeprefix("idem-"))
    else:
        send = h2c(stack.ingress_url, keys)
    sending = asyncio.ensure_future(send)
    process = worker.process
    assert process is not None

    def alive() -> None:
        if not process.running():
            raise RuntimeError(f"the worker stopped; see {worker.log_path}")
        if sending.done() and (failure := sending.exception()) is not None:
            raise failure

    try:
        return await e2e.applied_rate(admin, before, len(topic_records), alive, service)
    finally:
        await sending
        if subscription is not None:
            await admin.delete_subscription(subscription.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"--variants: unknown {', '.join(sorted(unknown))} (expected {VARIANTS})")
    asyncio.run(run(args.records, args.rounds, args.depth, variants))


if __name__ == "__main__":
    main()

"""End-to-end throughput: Kafka -> Restate -> handler -> durable state.

Over the same topic: a plain confluent-kafka consumer (the raw rate); one invocation per
record into a keyed counter (per-record rows), each with its CPU seconds per 1,000 records
of the process group that serves it and of restate-server's:
- the bare Restate Python SDK through a Restate subscription;
- the same counter as a restate-stream bound handler through a subscription (the baseline
  the per-record rows are compared with, round by round);
- the bound handler fed by restate-stream's consumer (`delivery: consumer`: one ingress send
  per record), which runs in the worker as in production (the benchmark resumes that round's
  binding in the bindings file the worker follows), so the worker's CPU includes it;
- (--typescript) Restate's TypeScript SDK through a subscription, served by Node;
and batched bindings (restate-stream's consumer, one invocation per key or partition per
batch; one row per batch variant; --per-record-only leaves them out), each beside the
simplest correct batching bridge written without the framework (benchmarks/minimal_bridge.py)
at the same batch size. With --peers, FastStream's consumers (benchmarks/faststream_peer.py;
aiokafka and confluent brokers, per-message and batch subscribers) count the same topic in
memory, each a subprocess. Batched rows give CPU seconds per 1,000 records of every process
involved: the delivery (this process), the worker and restate-server; a peer's is its own
process's; the raw row's is this process's.
Rates run from the first record seen to the last one done, so group joins are excluded.
Everything runs on one fresh local stack; rounds alternate baseline and candidates (the
per-record ones rotated), ratios are the median over rounds of candidate / baseline of the
same round, and the load average is printed per round. The worker is a separate process
(granian, the default server), as in production.

    .venv/bin/python -m benchmarks.e2e_throughput [--records 20000] [--keys 100] [--rounds 3]
        [--batch-sizes 1000,10000] [--per key,partition] [--unbatched-rounds 1] [--typescript]
        [--per-record-only] [--peers]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from benchmarks import faststream_peer
from benchmarks.apps import BATCH_HANDLERS, CONSUMER_HANDLERS
from benchmarks.common import (
    SELF,
    CostMeter,
    ProcessCost,
    machine,
    machine_busy_seconds,
    produce_keyed,
    reading_consumer,
    remove_scratch,
    replace_file,
)
from benchmarks.minimal_bridge import SERVICE as BRIDGE_SERVICE
from benchmarks.minimal_bridge import MinimalBridge
from benchmarks.profiling import profiled
from benchmarks.report import Series, cpu_cell, fmt, paired_ratio, series_table, table
from benchmarks.ts_peer import SERVICE as TS_SERVICE
from benchmarks.ts_peer import TsPeer
from connectors.group_consumer import FETCH_PROPERTIES
from restate_stream._util.gc_pause import tune_for_serving
from restate_stream._util.poll import apoll
from restate_stream.batch import BatchDelivery
from restate_stream.bindings import BatchSpec, Binding, load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPLETION_TIMEOUT = 600.0  # seconds for one round's invocations: a hang fails the run


def raw_consume_rate(
    bootstrap: str, topic: str, expected: int, fetching: Mapping[str, Any] = FETCH_PROPERTIES
) -> tuple[float, float]:
    """Records/s from the first record received to the last (group join excluded), and this
    process's CPU seconds per 1,000 records over that span (librdkafka's threads too).
    `fetching`: as restate-stream's consumer fetches, unless told otherwise."""
    consumer = reading_consumer(bootstrap, "bench-raw", fetching)
    consumer.subscribe([topic])
    seen = 0
    first = first_cpu = 0.0
    try:
        while seen < expected:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is None:
                    if seen == 0:
                        first, first_cpu = time.perf_counter(), time.process_time()
                    json.loads(message.value() or b"null")  # the handler side decodes too
                    seen += 1
        rate = (expected - 1) / (time.perf_counter() - first)
        cpu = (time.process_time() - first_cpu) * 1000 / expected
    finally:
        consumer.close()
    return rate, cpu


async def completed_rate(
    admin: AdminClient, where: str, expected: int, alive: Callable[[], None] = lambda: None
) -> float:
    """Records/s from the first invocation created to the last completed, as Restate saw it,
    of the invocations `where` selects; `alive` raises if what feeds them stopped."""
    last_report = time.perf_counter()
    count_sql = f"SELECT count(*) AS n FROM sys_invocation WHERE {where} AND status = 'completed'"

    async def completed() -> int:
        nonlocal last_report
        alive()
        done: int = (await admin.query(count_sql))[0]["n"]
        if time.perf_counter() - last_report > 5:
            print(f"    ... {done}/{expected}", flush=True)
            last_report = time.perf_counter()
        return done

    await apoll(
        completed,
        until=lambda done: done >= expected,
        what=f"{expected} completed invocations",
        timeout=COMPLETION_TIMEOUT,
    )
    span = await admin.query(
        f"SELECT min(created_at) AS first, max(completed_at) AS last FROM sys_invocation "
        f"WHERE {where}"
    )
    first = datetime.fromisoformat(span[0]["first"])
    last = datetime.fromisoformat(span[0]["last"])
    return (expected - 1) / (last - first).total_seconds()


async def restate_rate(
    admin: AdminClient,
    cluster: str,
    topic: str,
    expected: int,
    sink: str = "service://BenchCounter/count",
) -> float:
    """completed_rate through a new Restate subscription."""
    subscription = await admin.create_subscription(
        f"kafka://{cluster}/{topic}",
        sink,
        {"auto.offset.reset": "earliest", "group.id": f"bench-{uuid.uuid4().hex}"},
    )
    try:
        where = f"invoked_by_subscription_id = {sql_literal(subscription.id)}"
        return await completed_rate(admin, where, expected)
    finally:
        await admin.delete_subscription(subscription.id)


async def consumer_rate(
    admin: AdminClient,
    bindings: BenchBindings,
    binding: Binding,
    worker: WorkerProcess,
    expected: int,
) -> float:
    """completed_rate of a `delivery: consumer` binding, resumed in the bindings file so that
    the worker's consumer delivers it (as in production), paused again afterwards."""
    assert worker.process is not None
    process = worker.process

    def alive() -> None:
        if not process.running():
            raise RuntimeError(f"the worker stopped; see {worker.log_path}")

    # Counted in the objects' state, not sys_invocation: sends to a handler that keeps a
    # high-water carry no idempotency key, and Restate keeps no completed invocation of those.
    before = await counted(admin, CONSUMER_SERVICE)
    bindings.write(running=binding.name)
    try:
        return await applied_rate(admin, before, expected, alive)
    finally:
        bindings.write(running=None)


async def applied_rate(
    admin: AdminClient,
    before: int,
    expected: int,
    alive: Callable[[], None],
    service: str = "BenchConsumerCounter",
) -> float:
    """Records/s from the first increment of `service`'s counts seen to the last (polled
    every 0.1 s; the records applied by the first poll that saw any are not counted)."""
    first: tuple[float, int] | None = None
    last_report = time.perf_counter()
    deadline = time.perf_counter() + COMPLETION_TIMEOUT
    while True:
        alive()
        done = await counted(admin, service) - before
        now = time.perf_counter()
        if done > 0 and first is None:
            first = (now, done)
        if done >= expected and first is not None:
            return (done - first[1]) / max(now - first[0], 1e-3)
        if now > deadline:
            raise TimeoutError(f"{done}/{expected} records applied in {COMPLETION_TIMEOUT}s")
        if now - last_report > 5:
            print(f"    ... {done}/{expected}", flush=True)
            last_report = now
        await asyncio.sleep(0.1)


@dataclasses.dataclass
class Unbatched:
    """One way of handling a record per invocation: its sink, and the process group that
    serves it (CPU is measured for it and for restate-server)."""

    name: str
    service: str
    pgid: int
    # Fed by restate-stream's consumer: that round's binding by round number (else subscribed).
    consumer_bindings: dict[int, Binding] | None = None
    rates: list[float] = dataclasses.field(default_factory=list)
    serving_cpu: list[float] = dataclasses.field(default_factory=list)  # s per 1,000 records
    restate_cpu: list[float] = dataclasses.field(default_factory=list)
    serving_rss: list[int] = dataclasses.field(default_factory=list)  # peak bytes per round
    restate_rss: list[int] = dataclasses.field(default_factory=list)
    # Not in the totals (the same broker and counting serve every row): what else the span cost.
    kafka_cpu: list[float] = dataclasses.field(default_factory=list)  # the broker, s per 1,000
    bench_cpu: list[float] = dataclasses.field(default_factory=list)  # this process, s per 1,000
    busy_cores: list[float] = dataclasses.field(default_factory=list)  # the machine's, mean

    def sink(self, r: int) -> str:
        """The handler round `r` (from 1) subscribes: a bound handler's own per round."""
        handler = f"count_{r - 1}" if self.service == BOUND_SERVICE else "count"
        return f"service://{self.service}/{handler}"

    @property
    def total_cpu(self) -> list[float]:
        return [a + b for a, b in zip(self.serving_cpu, self.restate_cpu, strict=True)]


async def unbatched_round(
    candidate: Unbatched,
    admin: AdminClient,
    topic: str,
    records: int,
    restate_pgid: int,
    kafka_pgid: int,
    round_: int,
    bindings: BenchBindings,
    worker: WorkerProcess,
) -> None:
    groups = {"serving": candidate.pgid, "restate": restate_pgid, "kafka": kafka_pgid}
    busy, started = machine_busy_seconds(), time.monotonic()
    with CostMeter({**groups, "bench": SELF}) as meter:
        if candidate.consumer_bindings is not None:
            binding = candidate.consumer_bindings[round_]
            rate = await consumer_rate(admin, bindings, binding, worker, records)
        else:
            rate = await restate_rate(admin, "bench", topic, records, candidate.sink(round_))
    candidate.busy_cores.append(
        (machine_busy_seconds() - busy) / max(time.monotonic() - started, 1e-3)
    )
    costs = meter.costs(records)
    candidate.kafka_cpu.append(costs["kafka"].cpu_per_1000)
    candidate.bench_cpu.append(costs["bench"].cpu_per_1000)
    candidate.rates.append(rate)
    candidate.serving_cpu.append(costs["serving"].cpu_per_1000)
    candidate.restate_cpu.append(costs["restate"].cpu_per_1000)
    candidate.serving_rss.append(costs["serving"].peak_rss)
    candidate.restate_rss.append(costs["restate"].peak_rss)


BASELINE = "bound handler, subscription"
BOUND_SERVICE = "BenchBoundCounter"
CONSUMER_SERVICE = "BenchConsumerCounter"


def per_record_table(candidates: list[Unbatched], raw_median: float) -> str:
    """The per-record rows: medians, and ratios paired by round against the baseline."""
    base = next(c for c in candidates if c.name == BASELINE)
    rows = []
    for c in candidates:
        if not c.rates:
            continue
        rate = statistics.median(c.rates)
        rows.append(
            [
                c.name,
                f"{rate:,.0f}",
                fmt(paired_ratio(c.rates, base.rates), ".2f"),
                f"{rate / raw_median:.4f}",
                f"{statistics.median(c.serving_cpu):.2f}",
                f"{statistics.median(c.restate_cpu):.2f}",
                f"{statistics.median(c.total_cpu):.2f}",
                fmt(paired_ratio(c.total_cpu, base.total_cpu), ".2f"),
                f"{max(c.serving_rss) / 2**20:,.0f}",
                f"{max(c.restate_rss) / 2**20:,.0f}",
            ]
        )
    headers = [
        "per record (median)",
        "records/s",
        "x baseline",
        "x raw",
        "CPU s/1k serving",
        "CPU s/1k restate",
        "CPU s/1k total",
        "CPU x baseline",
        "peak RSS MiB serving",
        "peak RSS MiB restate",
    ]
    return table(headers, rows)


BATCH_PROCESSES = ("delivery", "worker", "restate")


def process_cost_table(costs: dict[str, list[dict[str, ProcessCost]]]) -> str:
    """Per batched row, each process's CPU s per 1,000 records (median over rounds) beside
    its peak resident memory (the highest over rounds)."""
    rows = []
    for name, rounds in costs.items():
        if not rounds:
            continue
        cells = [name]
        for process in BATCH_PROCESSES:
            cpu = statistics.median(r[process].cpu_per_1000 for r in rounds)
            rss = max(r[process].peak_rss_mib for r in rounds)
            cells += [cpu_cell(cpu), f"{rss:,.0f}"]
        rows.append(cells)
    headers = [""]
    for process in BATCH_PROCESSES:
        headers += [f"CPU s/1k {process}", f"peak RSS MiB {process}"]
    return table(headers, rows)


def stack_cost_table(
    candidates: list[Unbatched], costs: dict[str, list[dict[str, ProcessCost]]]
) -> str:
    """The whole local stack's cost per row, per-record and batched in one table: CPU s per
    1,000 records of the consumer, the worker and restate-server (medians over rounds; the
    total is the median of per-round sums) and each one's peak resident memory. A
    subscription's consumer runs inside restate-server, consumer delivery's inside the worker,
    and a batched row's delivery in a process of its own."""
    rows = []
    for c in candidates:
        if not c.rates:
            continue
        inside = "in worker" if c.consumer_bindings is not None else "in restate"
        rows.append(
            [
                c.name,
                inside,
                cpu_cell(statistics.median(c.serving_cpu)),
                cpu_cell(statistics.median(c.restate_cpu)),
                cpu_cell(statistics.median(c.total_cpu)),
                inside,
                f"{max(c.serving_rss) / 2**20:,.0f}",
                f"{max(c.restate_rss) / 2**20:,.0f}",
            ]
        )
    for name, rounds in costs.items():
        if not rounds:
            continue
        cpu = [statistics.median(r[p].cpu_per_1000 for r in rounds) for p in BATCH_PROCESSES]
        total = statistics.median(sum(r[p].cpu_per_1000 for p in BATCH_PROCESSES) for r in rounds)
        rss = [max(r[p].peak_rss_mib for r in rounds) for p in BATCH_PROCESSES]
        cells = [*(cpu_cell(v) for v in cpu), cpu_cell(total), *(f"{v:,.0f}" for v in rss)]
        rows.append([name, *cells])
    headers = [
        "whole stack, per 1,000 records",
        "CPU s consumer",
        "CPU s worker",
        "CPU s restate",
        "CPU s total",
        "peak RSS MiB consumer",
        "peak RSS MiB worker",
        "peak RSS MiB restate",
    ]
    return table(headers, rows)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A batched row's binding settings; `max_wait` is named in the row only when a run
    compares several (`--max-wait 50,10`)."""

    max_records: int
    per: str = "key"
    max_wait_ms: int = int(BatchSpec().max_wait.total_seconds() * 1000)
    named_wait: bool = False
    values: bool = False  # the handler takes `values: list[T]`, not events

    def name(self) -> str:
        name = f"{self.max_records}" if self.per == "key" else f"{self.max_records} per partition"
        name = f"{name}, max_wait {self.max_wait_ms}ms" if self.named_wait else name
        return f"{name}, values" if self.values else name

    def binding(self, round_: int) -> str:
        kind = "-values" if self.values else ""
        return f"batch-{self.max_records}-{self.per}-{self.max_wait_ms}{kind}-{round_}"


def bridge_name(size: int) -> str:
    return f"minimal bridge, poll {4 * size}, batch per key"


def measured(
    row: Series,
    rate: float,
    meter: CostMeter,
    records: int,
    process_costs: dict[str, list[dict[str, ProcessCost]]],
) -> None:
    """A batched round's result: the row's rate and total CPU, and each process's cost."""
    costs = meter.costs(records)
    row.add(rate, sum(c.cpu_per_1000 for c in costs.values()))
    process_costs[row.name].append(costs)


def report(round_: int, row: Series) -> None:
    cpu = f", CPU s per 1,000: {cpu_cell(row.cpu[-1])}" if row.cpu else ""
    print(f"round {round_}: {row.name}: {row.rates[-1]:>10,.0f} records/s{cpu}", flush=True)


def batch_bindings(
    stack: LocalStack,
    topic: str,
    variants: list[Variant],
    rounds: int,
    running: str | None = None,
    per_record_topic: str | None = None,
) -> str:
    """One paused binding per (batch variant, round), each on its own handler: the worker
    wraps them; the benchmark runs their deliveries itself, one at a time. One `delivery:
    consumer` binding per round, all paused but `running`: the worker's consumer delivers it."""
    per_record_topic = per_record_topic or topic
    lines = [
        f'restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}',
        f'kafka: {{clusters: {{bench: {{bootstrap.servers: "{stack.bootstrap_servers}"}}}}}}',
        "bindings:",
    ]
    runs = [(v, r) for v in variants for r in range(rounds)]
    # Not delivered by the worker (paused): they make the worker wrap BenchBoundCounter's
    # handlers, `count` (other benchmarks subscribe it) and one per round (each its own
    # high-water); the benchmark subscribes them itself, as it does the bare SDK's counter.
    lines.append(
        f"  - {{name: bound-counter, topic: {per_record_topic}, handler: BenchBoundCounter/count,"
        " paused: true}"
    )
    for r in range(rounds):
        lines.append(
            f"  - {{name: bound-counter-{r}, topic: {per_record_topic},"
            f" handler: BenchBoundCounter/count_{r},"
            " paused: true}"
        )
    for r in range(rounds):
        name = f"consumer-counter-{r}"
        lines.append(
            f"  - {{name: {name}, topic: {per_record_topic},"
            f" handler: BenchConsumerCounter/count_{r},"
            f" paused: {str(name != running).lower()}, delivery: consumer}}"
        )
    handlers = {False: (f"count_{i}" for i in range(BATCH_HANDLERS)),
                True: (f"values_{i}" for i in range(BATCH_HANDLERS))}  # fmt: skip
    for v, r in runs:
        lines.append(
            f"  - {{name: {v.binding(r)}, topic: {topic},"
            f" handler: BenchBatchCounter/{next(handlers[v.values])}, paused: true,"
            f" batch: {{max_records: {v.max_records}, max_wait: {v.max_wait_ms}ms, per: {v.per}}}}}"
        )
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class BenchBindings:
    """The bindings file the worker follows; rewriting it resumes or pauses a consumer."""

    path: Path
    stack: LocalStack
    topic: str
    variants: list[Variant]
    rounds: int
    per_record_topic: str | None = None  # the per-record rows' topic, if not `topic`

    def write(self, running: str | None = None) -> None:
        text = batch_bindings(
            self.stack, self.topic, self.variants, self.rounds, running, self.per_record_topic
        )
        replace_file(self.path, text)


async def counted(admin: AdminClient, service: str) -> int:
    rows = await admin.query(
        f"SELECT value_utf8 FROM state WHERE service_name = {sql_literal(service)} "
        "AND key = 'count'"
    )
    return sum(int(row["value_utf8"]) for row in rows)


async def last_completed(admin: AdminClient, service: str, since: float) -> float | None:
    """When (time.time()) Restate completed the last of `service`'s invocations created from
    `since` (time.time()) on; None if it keeps none."""
    rows = await admin.query(
        "SELECT max(completed_at) AS last FROM sys_invocation "
        f"WHERE target_service_name = {sql_literal(service)} "
        f"AND created_at >= {sql_literal(datetime.fromtimestamp(since, UTC).isoformat())}"
    )
    last = rows[0]["last"] if rows else None
    return None if last is None else datetime.fromisoformat(last).timestamp()


class Feeder(Protocol):
    """What batched_rate watches: restate-stream's BatchDelivery or the minimal bridge."""

    delivered: int
    sends: int  # accepted
    first_dispatch: float | None

    async def run(self, stop: asyncio.Event) -> None: ...


async def batched_rate(admin: AdminClient, feeder: Feeder, service: str, expected: int) -> float:
    """Records/s from the first batch `feeder` sent to the last of its invocations completed,
    once every record is counted in `service`'s state."""
    before = await counted(admin, service)
    stop = asyncio.Event()
    task = asyncio.create_task(feeder.run(stop))
    try:
        last_report = time.perf_counter()
        accepted_at: float | None = None
        while (done := await counted(admin, service) - before) < expected:
            if task.done():
                task.result()  # raises what stopped the delivery
                raise RuntimeError("the delivery stopped before every record was counted")
            if accepted_at is None and feeder.delivered >= expected:
                accepted_at = time.perf_counter()
            if time.perf_counter() - last_report > 5:
                print(f"    ... {done}/{expected}", flush=True)
                last_report = time.perf_counter()
            await asyncio.sleep(0.2)  # as the unbatched rate polls: SQL costs Restate CPU
        end = seen = time.perf_counter()
        first = feeder.first_dispatch
        assert first is not None
        # Counted every 0.2 s, the end is seen up to a poll late (on a 1.5 s round, up to 15%
        # of it): the end is the last completion of the round's invocations as Restate
        # stamped it (they carry idempotency keys, so Restate keeps them).
        to_wall = time.time() - time.perf_counter()
        last = await last_completed(admin, service, first + to_wall)
        if last is not None:
            end = min(end, last - to_wall)
        accepted = (
            "" if accepted_at is None else f"all sends accepted after {accepted_at - first:.2f}s, "
        )
        print(
            f"    {accepted}all completed after {end - first:.2f}s "
            f"(the count saw it after {seen - first:.2f}s)",
            flush=True,
        )
        each = feeder.delivered / max(feeder.sends, 1)
        print(f"    {feeder.sends:,} sends, {each:,.0f} records each", flush=True)
    finally:
        stop.set()
        await task
    if done != expected:
        raise SystemExit(f"batched state check failed: {done} counted, expected {expected}")
    return (expected - 1) / (end - first)


def batch_delivery(binding: Binding, stack: LocalStack) -> BatchDelivery:
    """The (paused in the file) binding's delivery, to run in this process."""
    return BatchDelivery(
        dataclasses.replace(binding, paused=False),
        {"bootstrap.servers": stack.bootstrap_servers},
        stack.ingress_url,
    )


PEER_TIMEOUT = 900.0  # seconds for one peer's drain: a hang fails the run


async def peer_round(
    stack: LocalStack, topic: str, records: int, broker: str, subscriber: str, size: int, log: Path
) -> tuple[float, float]:
    """One FastStream peer's (records/s, CPU s per 1,000 records), run as a subprocess in its
    own process group; its log goes to `log`."""
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            faststream_peer.__name__,
            *("--broker", broker, "--subscriber", subscriber),
            *("--bootstrap", stack.bootstrap_servers, "--topic", topic),
            *("--records", str(records), "--max-records", str(size)),
            *("--timeout", str(PEER_TIMEOUT)),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"FastStream peer {broker} {subscriber} failed: see {log}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    if result["counted"] < records:
        raise SystemExit(f"FastStream peer {broker} {subscriber}: {result['counted']} counted")
    return result["records_per_s"], result["cpu_s_per_1000"]


def peer_name(broker: str, subscriber: str, size: int) -> str:
    shape = "per message" if subscriber == "per-message" else f"batch {size}"
    return f"FastStream {broker}, {shape}"


async def run(
    records: int,
    keys: int,
    rounds: int,
    partitions: int,
    variants: list[Variant],
    unbatched_rounds: int,
    typescript: bool = False,
    peers: bool = False,
    per_record_records: int | None = None,
) -> None:
    if max(sum(v.values == kind for v in variants) for kind in (False, True)) * rounds > (
        BATCH_HANDLERS
    ):
        raise SystemExit(
            f"at most {BATCH_HANDLERS} batched rounds of each handler kind (variants x rounds)"
        )
    if rounds > CONSUMER_HANDLERS:
        raise SystemExit(f"at most {CONSUMER_HANDLERS} rounds")
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-"))
    with LocalStack(home, StackPorts.free()) as stack:
        topic = per_record_topic = "bench-e2e"
        produce_keyed(stack.bootstrap_servers, topic, records, keys, partitions)
        # The per-record rows run ~1,000 records/s: a topic of their own can be shorter.
        per_record_records = per_record_records or records
        if per_record_records != records:
            per_record_topic = "bench-e2e-per-record"
            produce_keyed(
                stack.bootstrap_servers, per_record_topic, per_record_records, keys, partitions
            )
        bindings = BenchBindings(
            home / "bindings.yaml", stack, topic, variants, rounds, per_record_topic
        )
        bindings.write()
        batched_bindings = {b.name: b for b in load_bindings(bindings.path).bindings}
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=REPO_ROOT, bindings=bindings.path
        )
        worker.start()
        peer = TsPeer(home / "ts-peer.log") if typescript and unbatched_rounds else None
        try:
            if peer is not None:
                peer.start()
            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                assert worker.process is not None and stack.restate.process is not None
                restate_pgid = stack.restate.process.pid
                assert stack.kafka.process is not None
                kafka_pgid = stack.kafka.process.pid
                candidates = [
                    Unbatched("bare Python SDK, subscription", "BenchCounter", worker.process.pid),
                    Unbatched(BASELINE, BOUND_SERVICE, worker.process.pid),
                    Unbatched(
                        "bound handler, consumer delivery",
                        "BenchConsumerCounter",
                        worker.process.pid,
                        {r + 1: batched_bindings[f"consumer-counter-{r}"] for r in range(rounds)},
                    ),
                ]
                if peer is not None:
                    await admin.register_deployment(peer.uri)
                    candidates.append(
                        Unbatched("TypeScript SDK, subscription", TS_SERVICE, peer.pid)
                    )
                await admin.create_kafka_cluster(
                    "bench", {"bootstrap.servers": stack.bootstrap_servers}
                )
                # The first consumer group creates __consumer_offsets (50 partitions): warm up.
                raw_consume_rate(stack.bootstrap_servers, topic, records)
                raw = Series("raw confluent-kafka consume + JSON decode")
                # The same reader with librdkafka's fetch backoff left at its default (1 s):
                # what the fetch setting alone is worth.
                raw_default = Series(f"{raw.name}, fetch.queue.backoff.ms default")
                batched = {
                    v: Series(f"batched, max_records {v.name()}", versus=bridge_name(v.max_records))
                    for v in variants
                }
                sizes = sorted({v.max_records for v in variants})
                bridges = {
                    size: Series(bridge_name(size), versus=f"batched, max_records {size}")
                    for size in sizes
                }
                peer_rows: dict[tuple[str, str, int], Series] = {}
                if peers:
                    for broker in faststream_peer.BROKERS:
                        one = (broker, "per-message", 0)
                        peer_rows[one] = Series(peer_name(*one), versus=f"unbatched, {BASELINE}")
                        for size in sizes:
                            many = (broker, "batch", size)
                            peer_rows[many] = Series(
                                peer_name(*many), versus=f"batched, max_records {size}"
                            )
                # The delivery (BatchDelivery or the bridge) runs in this process.
                processes = {
                    "delivery": SELF,
                    "worker": worker.process.pid,
                    "restate": restate_pgid,
                }
                # Profiled with BENCH_PROFILE (benchmarks/profiling.py): not restate-server.
                profiled_groups = {"delivery": SELF, "worker": worker.process.pid}
                process_costs: dict[str, list[dict[str, ProcessCost]]] = {
                    row.name: [] for row in [*batched.values(), *bridges.values()]
                }
                # The deliveries run here as in a serving process, whose collections are tuned
                # once its app is built (restate_stream/runtime/_asgi.py): so are this one's
                # (the minimal bridge runs here too).
                tune_for_serving()
                for r in range(1, rounds + 1):
                    raw.add(*raw_consume_rate(stack.bootstrap_servers, topic, records))
                    raw_default.add(*raw_consume_rate(stack.bootstrap_servers, topic, records, {}))
                    print(
                        f"round {r}: raw consumer {raw.rates[-1]:>10,.0f} records/s, with "
                        f"librdkafka's default fetch backoff {raw_default.rates[-1]:,.0f} "
                        f"(load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
                    if r <= unbatched_rounds:
                        # Rotated each round: none always runs first (or last).
                        shift = (r - 1) % len(candidates)
                        for c in candidates[shift:] + candidates[:shift]:
                            await unbatched_round(
                                c,
                                admin,
                                per_record_topic,
                                per_record_records,
                                restate_pgid,
                                kafka_pgid,
                                r,
                                bindings,
                                worker,
                            )
                            print(
                                f"round {r}: {c.name:<32} {c.rates[-1]:>8,.0f} records/s, "
                                f"CPU s per 1,000: serving {c.serving_cpu[-1]:.2f}, "
                                f"restate {c.restate_cpu[-1]:.2f}, kafka {c.kafka_cpu[-1]:.2f}, "
                                f"this process {c.bench_cpu[-1]:.2f}; machine busy "
                                f"{c.busy_cores[-1]:.2f} cores (load {os.getloadavg()[0]:.2f})",
                                flush=True,
                            )
                    for variant in variants:
                        binding = batched_bindings[variant.binding(r - 1)]
                        delivery = batch_delivery(binding, stack)
                        with profiled(binding.name, profiled_groups), CostMeter(processes) as meter:
                            rate = await batched_rate(admin, delivery, binding.service, records)
                        measured(batched[variant], rate, meter, records, process_costs)
                        report(r, batched[variant])
                    for size in sizes:
                        bridge = MinimalBridge(
                            stack.bootstrap_servers,
                            stack.ingress_url,
                            topic,
                            f"bench-bridge-{uuid.uuid4().hex}",
                            size,
                        )
                        bridge.prefix = f"{size}-{r}/"  # this round's objects: fresh offsets
                        with (
                            profiled(f"bridge-{size}-{r}", profiled_groups),
                            CostMeter(processes) as meter,
                        ):
                            rate = await batched_rate(admin, bridge, BRIDGE_SERVICE, records)
                        measured(bridges[size], rate, meter, records, process_costs)
                        report(r, bridges[size])
                    for (broker, subscriber, size), row in peer_rows.items():
                        one_by_one = subscriber == "per-message"
                        if one_by_one and r > unbatched_rounds:
                            continue  # one record at a time, as slow as the unbatched rows
                        log = home / "faststream-peer.log"
                        row.add(
                            *await peer_round(
                                stack,
                                per_record_topic if one_by_one else topic,
                                per_record_records if one_by_one else records,
                                broker,
                                subscriber,
                                size or 1,
                                log,
                            )
                        )
                        report(r, row)
                totals = {}
                for c in candidates:
                    totals[c.name] = await counted(admin, c.service)
        finally:
            if peer is not None:
                peer.stop()
            worker.stop()
    raw_median = statistics.median(raw.rates)
    print()
    print(machine())
    print(
        f"records: {records} (per-record rows and per-message peers: {per_record_records}), "
        f"keys: {keys}, partitions: {partitions}, rounds: {rounds}"
    )
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    print(f"raw confluent-kafka consume (median):  {raw_median:>10,.0f} records/s")
    if unbatched_rounds:
        print(
            f"per record, {unbatched_rounds} round(s); baseline: {BASELINE}; serving = the "
            "worker's process group (with its consumer for consumer delivery) or Node's; "
            "peak RSS: the highest over rounds"
        )
        print(per_record_table(candidates, raw_median))
        bare = candidates[0]
        print(
            f"framework overhead: bound handler = "
            f"{paired_ratio(candidates[1].rates, bare.rates):.3f} x bare Python SDK"
        )
    if variants or peer_rows:
        waits_named = ", ".join(f"{w}ms" for w in sorted({v.max_wait_ms for v in variants}))
        print(
            f"batched: max_wait {waits_named}; baseline: {raw.name}; ratios paired by round; "
            "CPU of the delivery (this process), the worker and restate-server; a peer's: its "
            "own process"
        )
        unbatched_rows = [
            Series(f"unbatched, {c.name}", rates=c.rates, cpu=c.total_cpu)
            for c in candidates
            if c.name == BASELINE and c.rates
        ]
        rows = [
            raw_default,
            *unbatched_rows,
            *batched.values(),
            *bridges.values(),
            *peer_rows.values(),
        ]
        print(series_table(raw, rows))
        print(
            "batched, per process: CPU s per 1,000 records (median) and peak resident memory "
            "(MiB, highest over rounds); delivery = this process, worker = its process group"
        )
        print(process_cost_table(process_costs))
    if unbatched_rounds and variants:
        print(stack_cost_table(candidates, process_costs))
    expected = per_record_records * unbatched_rounds
    wrong = {name: n for name, n in totals.items() if n != expected}
    if wrong:
        raise SystemExit(f"state check failed: {wrong} increments, expected {expected} each")
    print(
        f"state check: every per-record counter has {expected} increments = "
        f"{per_record_records} records "
        f"x {unbatched_rounds} rounds, none lost/doubled"
    )
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--per-record-records",
        type=int,
        default=None,
        help="records for the per-record rows and FastStream's per-message peers, on a topic "
        "of their own (default: --records; they run ~1,000 records/s)",
    )
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1000,10000", help="comma-separated max_records")
    parser.add_argument(
        "--max-wait",
        default=str(Variant(0).max_wait_ms),
        help="the batched bindings' max_wait in ms (comma-separated: rows side by side)",
    )
    parser.add_argument(
        "--per", default="key", help="comma-separated batch objects: key, partition (per: ...)"
    )
    parser.add_argument(
        "--unbatched-rounds",
        type=int,
        default=None,
        help="rounds with the per-record rows (default: all; ~1,000 records/s, so fewer for a "
        "large --records)",
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--no-unbatched", action="store_true", help="no per-record rows")
    only.add_argument(
        "--per-record-only",
        action="store_true",
        help="only the per-record rows (consumer vs subscription delivery, TS SDK with "
        "--typescript), every round: no batched rows",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also FastStream's aiokafka and confluent brokers (per-message and batch "
        "subscribers), counting the same topic in memory",
    )
    parser.add_argument(
        "--typescript",
        action="store_true",
        help="also the same counter on Restate's TypeScript SDK (npm, served by Node)",
    )
    parser.add_argument(
        "--values",
        action="store_true",
        help="beside each batched row, the same with a handler of values (`values: list[T]`) "
        "instead of events",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",") if size]
    per = [] if args.per_record_only else [p for p in args.per.split(",") if p]
    waits = [int(w) for w in args.max_wait.split(",") if w]
    variants = [
        Variant(size, p, wait, named_wait=len(waits) > 1)
        for p in per
        for size in sizes
        for wait in waits
    ]
    if args.values:
        variants = [x for v in variants for x in (v, dataclasses.replace(v, values=True))]
    if args.no_unbatched:
        unbatched_rounds = 0
    elif args.per_record_only:
        unbatched_rounds = args.rounds
    else:
        unbatched_rounds = args.unbatched_rounds or args.rounds
    asyncio.run(
        run(
            args.records,
            args.keys,
            args.rounds,
            args.partitions,
            variants,
            unbatched_rounds,
            args.typescript,
            args.peers,
            args.per_record_records,
        )
    )


if __name__ == "__main__":
    main()

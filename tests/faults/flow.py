"""What every fault case does: records through a binding into per-key lists of sequence
numbers, each applied record published durably to an output topic, a fault mid-stream,
recovery, then the count of lost and doubled records (in state and on the output topic) and
the longest stall."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from connectors import Record, produce_records
from connectors.consume import read_topic
from restate_stream._util.poll import apoll
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminApiError, AdminClient, AdminUnavailableError
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.formats.cloudevents import unwrap_cloudevent
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack.kafka_cluster import KafkaCluster
from restate_stream.testing import drop_cluster, object_state, wait_until
from tests.faults.conftest import ROWS, Row
from tests.faults.lag import wait_committed
from tests.faults.seq_app import BOOTSTRAP_ENV, OUT_ENV
from tests.faults.streams import Streams

REPO = Path(__file__).resolve().parents[2]
APP = "tests.faults.seq_app:app"
# Restate retries a call to a dead worker with backoff up to 1 min by default (500 ms doubling);
# not a restate-stream default, see docs/cluster.md.
RETRY = "{initial_interval: 100ms, max_interval: 1s}"
PARTITIONS, KEYS = 4, 100


@dataclass
class Progress:
    """Samples the number of applied records while a case runs."""

    probe: Callable[[], Awaitable[int]]
    samples: list[tuple[float, int]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append((time.monotonic(), await self.probe()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    def stall(self, until: float) -> float:
        """The longest time between two increases of the applied count (before `until`)."""
        pairs = itertools.pairwise(self.samples)
        rises = [t for (_, before), (t, n) in pairs if n > before and t <= until]
        return max((b - a for a, b in itertools.pairwise(rises)), default=0.0)


@dataclass(frozen=True)
class Published:
    """What the output topic holds: every (key, seq) with the event id of each copy."""

    copies: dict[tuple[str, int], list[str]]

    def lost(self, expected: dict[str, list[int]]) -> int:
        return sum((key, s) not in self.copies for key, seqs in expected.items() for s in seqs)

    def twice(self) -> list[tuple[str, int]]:
        """Records published under more than one event id: a real double (each publish draws
        its id from ctx.uuid() once per journal, so a retry of the run reuses it)."""
        return [pair for pair, ids in self.copies.items() if len(set(ids)) > 1]

    def same_id_repeats(self) -> int:
        """Extra copies with an id already seen: the publisher's documented window (acked,
        then a crash before the journal entry), which `dedupe: true` consumers absorb."""
        return sum(len(ids) - len(set(ids)) for ids in self.copies.values())


class Case:
    """One binding (per record, or batched when `batch` is given) on its own topic, cluster
    name and worker, publishing what it applies to its own output topic; `options` are the
    binding's subscription options."""

    def __init__(
        self,
        kafka: KafkaCluster,
        restate_urls: tuple[str, str],
        admin: AdminClient,
        tmp: Path,
        *,
        batch: str | None,
        options: dict[str, str] | None = None,
        retry: str | None = None,
        delivery: str | None = None,
        streams: bool = False,
    ) -> None:
        self.kafka, self.admin, self.tmp = kafka, admin, tmp
        admin_url, ingress_url = restate_urls
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.topic, self.out = f"items-{self.run}", f"out-{self.run}"
        self.service = "SeqBatch" if batch else "SeqLog"
        handler = "SeqBatch/on_items" if batch else "SeqLog/on_item"
        self.port = free_ports(1)[0]
        # A window and a table binding beside the case's own, delivered the same way.
        self.streams = Streams(self.run, kafka.bootstrap_servers) if streams else None
        cluster = f"c-{self.run}"
        shared = (f"    delivery: {delivery}\n" if delivery else "") + (
            f"    retry: {retry}\n" if retry else ""
        )
        self.bindings = tmp / "bindings.yaml"
        self.bindings.write_text(
            f"""\
restate: {{admin_url: "{admin_url}", ingress_url: "{ingress_url}"}}
kafka:
  clusters:
    {cluster}: {{bootstrap.servers: "{kafka.bootstrap_servers}"}}
topics:
  {self.topic}: {{cluster: {cluster}, partitions: {PARTITIONS}}}
  {self.out}: {{cluster: {cluster}, partitions: {PARTITIONS}}}
"""
            + (self.streams.topics_yaml(cluster) if self.streams else "")
            + f"""\
worker: {{app: "{APP}", uri: "http://127.0.0.1:{self.port}"}}
bindings:
  - name: {self.topic}
    topic: {self.topic}
    handler: {handler}
    group: faults.{self.topic}
"""
            + (f"    batch: {batch}\n" if batch else "")
            + (f"    options: {json.dumps(options)}\n" if options else "")
            + shared
            + (self.streams.bindings_yaml(shared) if self.streams else "")
        )
        self.spec = load_bindings(self.bindings)
        self.expected: dict[str, list[int]] = defaultdict(list)
        self.workers = 0
        self.worker: WorkerProcess | None = None  # the one serving now
        self.stop_producing = threading.Event()

    def start_worker(self) -> WorkerProcess:
        self.workers += 1
        worker = WorkerProcess(
            APP,
            self.tmp / f"worker-{self.workers}.log",
            port=self.port,
            cwd=REPO,
            bindings=self.bindings,
            env={BOOTSTRAP_ENV: self.kafka.bootstrap_servers, OUT_ENV: self.out},
        )
        worker.start(timeout=60)
        self.worker = worker
        return worker

    @contextlib.asynccontextmanager
    async def deployed(self) -> AsyncIterator[None]:
        """A worker serving the case's binding and the bindings applied; afterwards the
        current worker stopped and the case's Kafka cluster dropped from Restate."""
        self.start_worker()
        try:
            _, report = await apply_bindings(self.spec, self.admin)
            assert report.ok, report.render()
            yield
        finally:
            if self.worker is not None:
                self.worker.stop()
            await drop_cluster(self.admin, f"c-{self.run}")

    def produce(self, seqs: range) -> None:
        for s in seqs:
            self.expected[f"{self.run}-k{s % KEYS}"].append(s)
        produce_records(
            self.kafka.bootstrap_servers,
            self.topic,
            (Record(f"{self.run}-k{s % KEYS}", json.dumps({"seq": s})) for s in seqs),
        )

    async def applied(self) -> dict[str, list[int]]:
        # While a Restate node is down, a query can fail until its partitions have new
        # leaders ("node lookup for partition N failed"), or lose its answer mid-way (the
        # connection closed: AdminUnavailableError): asked again.
        state = await apoll(
            lambda: object_state(self.admin, self.service, "seqs"),
            what=f"{self.service} state through {self.admin_url}",
            timeout=60,
            interval=0.5,
            until=lambda _: True,
            retry_on=(AdminApiError, AdminUnavailableError),
        )
        return {k: v for k, v in state.items() if k.startswith(self.run)}

    async def applied_count(self) -> int:
        return sum(len(v) for v in (await self.applied()).values())

    async def published(self) -> Published:
        """The output topic read to its end: each record's (key, seq) and event id, checked to
        be one this case applied, under its own key, and in each key's order."""
        records = await asyncio.to_thread(
            read_topic, self.kafka.bootstrap_servers, self.out, timeout=120
        )
        copies: dict[tuple[str, int], list[str]] = defaultdict(list)
        last: dict[str, int] = {}  # each key's highest seq published so far (first copies)
        for r in records:
            where = f"{self.out}[{r.partition}]@{r.offset}"
            assert r.key is not None and r.value is not None, f"{where}: no key or value"
            data, event_id, _ = unwrap_cloudevent(json.loads(r.value))
            assert event_id is not None, f"{where}: not a CloudEvents envelope: {r.value!r}"
            key, seq = r.key.decode(), data["seq"]
            assert seq in self.expected.get(key, []), f"{where}: {key}/{seq} was never produced"
            if (key, seq) not in copies:  # a repeat is not checked for order, only its id
                assert seq > last.get(key, -1), f"{where}: {key}/{seq} after {key}/{last[key]}"
                last[key] = seq
            copies[(key, seq)].append(event_id)
        return Published(dict(copies))

    def produce_paced(self, records: int, rate: float, chunk: int = 50) -> float:
        """Produce `records` at about `rate` per second (chunks on a wall-clock schedule, so a
        chunk held up by a broker loss is followed by a catch-up); returns when the last was
        acknowledged."""
        began = time.monotonic()
        for first in range(0, records, chunk):
            if self.stop_producing.is_set():
                break
            due = began + first / rate
            if (ahead := due - time.monotonic()) > 0:
                time.sleep(ahead)  # pacing the load, not waiting for a condition
            self.produce(range(first, min(first + chunk, records)))
        return time.monotonic()

    async def stream_with_fault(
        self,
        name: str,
        records: int,
        rate: float,
        fault: Callable[[], Awaitable[None]],
        recover: Callable[[], Awaitable[None]],
    ) -> Row:
        """Records flow at `rate` per second (below what the binding drains, so applied
        progress follows production and a stall shows); at a third applied, `fault`, then
        `recover`; then wait until all is applied and the group committed to the end."""
        progress = Progress(self.applied_count)
        stop = asyncio.Event()
        sampler = asyncio.create_task(progress.run(stop))
        producer = asyncio.create_task(asyncio.to_thread(self.produce_paced, records, rate))
        streams = self.streams
        # The window and table records flow as long as the case's own, through the fault.
        beside = [asyncio.create_task(asyncio.to_thread(streams.produce))] if streams else []

        async def applied(at_least: int, before: str) -> None:
            await wait_until(
                self.applied_count,
                lambda n: n >= at_least,
                timeout=240,
                interval=0.1,
                describe=lambda n: f"{n} applied before {before}",
            )

        try:
            if streams:
                await applied(records // 6, "the quiet keys stop")
                streams.quiet.set()
            await applied(records // 3, "the fault")
            await fault()
            await recover()
            produced = await producer
            if streams:
                streams.stop.set()
                await asyncio.gather(*beside)
            await wait_until(
                self.applied_count,
                lambda n: n >= records,
                timeout=300,
                interval=0.5,
                describe=lambda n: f"{n}/{records} applied",
            )
            drained = min(
                (t for t, n in progress.samples if n >= records), default=time.monotonic()
            )
            group = self.spec.bindings[0].consumer_group
            await wait_committed(self.kafka.bootstrap_servers, {group: self.topic})
        finally:
            stop.set()
            await sampler
            # On a failure: the thread stops after its chunk, before the engines go away.
            self.stop_producing.set()
            if streams:
                streams.stop.set()
            await asyncio.wait([producer, *beside])
        final = await self.applied()
        lost = sum(len(set(want) - set(final.get(k, []))) for k, want in self.expected.items())
        twice = sum(len(v) - len(set(v)) for v in final.values())
        published = await self.published()
        doubles = published.twice()
        row = Row(
            name,
            records,
            lost,
            twice,
            progress.stall(drained),
            max(0.0, drained - produced),
            published.lost(self.expected),
            len(doubles),
            published.same_id_repeats(),
        )
        ROWS.append(row)
        print(f"\n{Row.HEADER}\n{row.line()}")
        streams_problems = await streams.check(name, self.admin) if streams else []
        assert (lost, twice) == (0, 0), row.line()
        assert row.pub_lost == 0, f"{row.pub_lost} applied records not on {self.out}"
        # Every repeat must carry the first copy's id: otherwise a consumer applies it twice.
        assert not doubles, f"published under different event ids: {doubles[:5]}"
        for key, seqs in self.expected.items():
            assert final[key] == seqs, f"{key}: records applied out of order"
        assert not streams_problems, "\n".join(streams_problems)
        return row


def kill_worker(worker: WorkerProcess) -> None:
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.stop()  # reaps; the group is already gone

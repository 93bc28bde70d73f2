"""restate-stream's own delivery: Kafka group member -> Restate ingress sends, for batched
bindings and for per-record bindings with `delivery: consumer` (what differs between them is
the send's shape: batch/sends.py; a per-record send carries one record, so none join).

Per poll cycle, records are collected into a batch until it holds `max_records` or
`max_wait` has passed since its first record; the batch is grouped by object key (the
record's key, or with `per: partition` its source partition: batch/objects.py) and each
key's records (in read order: per partition, ascending offsets) become one invocation, a
one-way send `POST {ingress}/{Service}/{key}/{handler}/send`. Sends of one key go one after
another: the next is posted only once Restate accepted the previous (202), because Restate
queues a key's invocations in arrival order, and that order is what makes the object's
high-water check exact (docs/architecture.md, "Batched bindings: why exactly once"). A
batch's offsets are committed once every send of it, and of every batch before it, was
accepted. Batches are pipelined: the next one is read while sends are in flight, bounded by
`max_batches_in_flight`, `max_records_in_flight` and `max_concurrent_sends`. A per-record
binding's records wait in their key's lane (a queue, not a task per record) and
`max_concurrent_sends` senders post ready keys' head records in turn.

A batched key's next send also waits, before it is posted, for the previous one's invocation
to complete (bounded: batch/pacing.py), so the invocation rate follows what Restate completes
rather than keys x cuts per second; a full send (max_records) does not wait, since no record
could join it, nor one while reading a backlog, where the hold gathers them. In a stream the
send is a call, answered at completion (`_call`), so commits follow completion there, or
acceptance asked by a one-way send once the call outlived the bound.
Until a key's send is posted (its previous send is in flight or running, or all
`max_concurrent_sends` are in flight), the key's records of later batches join it (up to
`max_records` per send) instead of queueing a send each: a send costs Restate, the worker
and this client a few milliseconds of CPU whatever its size, so under load the
sends grow rather than multiply (measured: benchmarks/batch_ingress.py). HTTP/1.1 with few
connections (64 cost the client 2-3x the CPU per send for fewer sends/s); httpx's HTTP/2
stalls concurrent request bodies larger than the flow-control window until the read timeout
(seen here: 30 s ReadTimeouts; httpcore's `_wait_for_outgoing_flow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter

import aiohttp

from connectors.group_consumer import GroupConsumer, PolledRecord
from restate_stream.batch.ingress_client import IngressClient, IngressSendError
from restate_stream.batch.pacing import (
    COMPLETION_WAIT,
    STALLED_ATTACH_TIMEOUT,
    CompletionPacer,
)
from restate_stream.batch.sends import Request, shape_for
from restate_stream.batch.timings import DeliveryObserver, SendStages
from restate_stream.bindings import SESSION_TIMEOUT_MS, Binding
from restate_stream.errors import WorkerError

log = logging.getLogger("restate_stream.batch")

_partition_of, _offset_of = itemgetter(1), itemgetter(2)  # of a PolledRecord

REVOKE_DRAIN_TIMEOUT = 10.0
IDLE_POLL = 0.2  # seconds a poll waits for a cut's first record
MIN_RECORDS_IN_FLIGHT = 50_000
# A per-record binding: records read per cut (each is its own send; a cut only bounds the
# commit bookkeeping), records in flight (waiting in their keys' lanes) and concurrent sends
# (one record each, one sender and connection each). Restate's CPU per accepted send falls
# as more are in flight at once (it writes them to its log together): with 16, 1.2-1.3x what
# a subscription costs it per record; with 64, about the same; with 100, 0.9x of 64's in one
# run on a loaded machine (benchmarks/ingress_cost.py, 100 keys: all of them in flight). A
# key has one in flight.
RECORD_CUT = 500
RECORD_RECORDS_IN_FLIGHT = 5_000
RECORD_CONCURRENT_SENDS = 128
# A batched binding's sends in flight at once (each key has at most one). 8 was set for httpx;
# with the lean client a send costs little here, and at 100 keys per key 8 slots were the
# largest share of a record's latency: sends queued for a slot while Restate had room
# (benchmarks/batch_latency.py --breakdown, docs/benchmarks.md "Batched latency").
BATCH_CONCURRENT_SENDS = 32
# While the consumer is behind (its cuts fill to max_records, and Kafka holds enough to fill
# the window), a batched key's next send is held until the records in flight reach their
# bound, at most this long: sends then carry what a window holds per key, as a bridge polling
# a window and sending each key's share does, rather than what arrived during one key's round.
HOLD_WHILE_BEHIND = 1.0
# A member that died (SIGKILL, OOM) holds its partitions until its session times out: the
# same 10 s as per-record bindings' subscriptions, so its partitions move to a live worker sooner.
# A 1 s heartbeat (subscriptions: 3 s): this consumer's own rebalances finish sooner.
CONSUMER_PROPERTIES = {"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1_000}


class DeliveryFailed(WorkerError):
    """A send raised instead of being accepted or refused; the delivery restarts."""


@dataclass
class _Batch:
    next_offsets: dict[int, int]  # partition -> offset after the batch's last record
    records: int
    sends: list[asyncio.Task[None]] = field(default_factory=list)  # batched sends
    unaccepted: int = 0  # per-record: its records in lanes or in flight

    def done(self) -> bool:
        """Every send accepted: finished, neither cancelled nor failed."""
        return self.unaccepted == 0 and all(
            t.done() and not t.cancelled() and t.exception() is None for t in self.sends
        )


@dataclass
class _Waiting:
    """A key's send not posted yet (waiting for its previous send's acceptance and completion,
    or a slot): records may still join it."""

    records: list[PolledRecord]
    task: asyncio.Task[None] | None = None
    # Once accepted by a one-way send: its idempotency key (the pacer attaches by it), taken
    # from the request rather than hashed again over the records. None after a call answered:
    # its invocation completed, nothing to wait for.
    idempotency_key: str | None = None


def _sends_of(
    by_key: dict[str, list[PolledRecord]], per_send: int
) -> list[tuple[str, list[PolledRecord]]]:
    """Each key's records of a cut as sends of at most `per_send` records, in read order (a
    batch's key group fits one send: the cut holds at most max_records)."""
    return [
        (key, group[i : i + per_send])
        for key, group in by_key.items()
        for i in range(0, len(group), per_send)
    ]


class BatchDelivery:
    def __init__(
        self,
        binding: Binding,
        kafka: Mapping[str, str],
        ingress_url: str,
        *,
        max_concurrent_sends: int | None = None,
        max_batches_in_flight: int = 1024,
        max_records_in_flight: int | None = None,
        completion_wait: float = COMPLETION_WAIT,
        unfinished_per_key: int = 0,
        hold_while_behind: float = HOLD_WHILE_BEHIND,
        calls: bool = True,
        observer: DeliveryObserver | None = None,
    ) -> None:
        """`calls`: a stream's paced sends go as calls (`_call`; False: one-way sends and the
        pacer's attaches). `observer`: told each record's and send's stages (benchmarks;
        batch/timings.py)."""
        assert binding.own_consumer, f"binding {binding.name} is delivered by a subscription"
        self.binding = binding
        self.shape = shape_for(binding)
        if binding.batch is not None:
            self.max_records = binding.batch.max_records
            self.max_wait = binding.batch.max_wait.total_seconds()
            concurrent = BATCH_CONCURRENT_SENDS
            in_flight = max(8 * self.max_records, MIN_RECORDS_IN_FLIGHT)
        else:
            self.max_records, self.max_wait = RECORD_CUT, 0.0
            concurrent, in_flight = RECORD_CONCURRENT_SENDS, RECORD_RECORDS_IN_FLIGHT
        self.kafka = dict(kafka)
        self.ingress_url = ingress_url.rstrip("/")
        self.max_batches_in_flight = max_batches_in_flight
        # Bounded in records, not only batches: batches cut by max_wait are small, and 8 of
        # them held too few records to keep every key's next send full (latency grew). With
        # many keys, sends only grow if more records than keys are in flight: at least 50,000,
        # in up to 1024 batches (at 2,000 records/s max_wait cuts ~100-record batches).
        self.max_records_in_flight = max_records_in_flight or in_flight
        self.max_concurrent_sends = max_concurrent_sends or concurrent
        self._send_slots = asyncio.Semaphore(self.max_concurrent_sends)
        self._catching_up = False  # the latest cut was full
        self.calls = calls
        # `per: partition` sends fill to max_records from a few cuts: holding them only
        # stalls the worker and Restate while the window fills (measured: slower).
        per_key = binding.batch is not None and binding.batch.per == "key"
        self.hold_while_behind = hold_while_behind if per_key else 0.0
        self._released = asyncio.Event()  # cleared while behind with room left in flight
        self._released.set()
        self._batches: deque[_Batch] = deque()
        self._held = 0  # records of `_batches` (in flight: read and not committed)
        self._tails: dict[str, asyncio.Task[None]] = {}  # object key -> its latest send
        self._waiting: dict[str, _Waiting] = {}  # object key -> its send not posted yet
        # Batched sends wait for the key's previous invocation to complete (bounded; 0: paced
        # by acceptance only); a per-record send carries one record, so none would join.
        self._pacer = (
            CompletionPacer(completion_wait, unfinished=unfinished_per_key)
            if binding.batch is not None and completion_wait > 0
            else None
        )
        # Per-record sends: each key's records wait in a lane, in read order, and a fixed set
        # of senders posts the head of each ready lane (a key is in `_ready` or being posted,
        # never both: its next record is posted only once the previous was accepted). No task
        # or future per record: a task per record, each waiting on its key's previous one,
        # was most of the consumer's CPU per record (py-spy).
        self._lanes: dict[str, deque[tuple[PolledRecord, _Batch]]] = {}
        self._ready: deque[str] = deque()
        self._work = asyncio.Event()  # set when `_ready` gains a key
        self._progress = asyncio.Event()  # set when a per-record batch is all accepted
        self._senders: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: IngressClient | None = None
        # The first send that raised (not a refusal: those are retried), noted as it ends.
        self._send_failure: BaseException | None = None
        self.delivered = 0  # records whose send Restate accepted (for logs and benchmarks)
        self.sends = 0  # sends Restate accepted
        self.first_dispatch: float | None = None  # perf_counter() at the first batch
        self.observer = observer

    # --- running --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish what is in flight (bounded) and leave."""
        self._loop = asyncio.get_running_loop()
        self._send_failure = None  # a restart after a failed send begins anew
        b = self.binding
        consumer = GroupConsumer(
            self.kafka,
            b.topic,
            b.consumer_group,
            start=b.start,
            on_revoke=self._on_revoke,
            properties=CONSUMER_PROPERTIES,
        )
        # Our own lean client: httpx's per-request machinery (pool assignment, sniffio) was
        # ~75% of this process's CPU (py-spy, 10,000 keys), aiohttp's still most of a send's.
        # The pacer's attaches (long-held GETs, few) stay on aiohttp.
        connections = self.max_concurrent_sends
        if self._pacer is not None:
            # Calls held open (the pacer bounds them): kept for the next ones.
            connections += self._pacer.max_attaches
        client = IngressClient(self.ingress_url, connections=connections)
        self._client = client
        async with contextlib.AsyncExitStack() as closing:
            closing.push_async_callback(client.close)
            if self._pacer is not None:
                # Attaches, held open until completion, on connections of their own.
                attach_client = await closing.enter_async_context(
                    aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=self._pacer.max_attaches),
                        timeout=aiohttp.ClientTimeout(total=STALLED_ATTACH_TIMEOUT),
                    )
                )
                self._pacer.open(attach_client, self.ingress_url)
            await self._deliver(consumer, stop)

    async def _deliver(self, consumer: GroupConsumer, stop: asyncio.Event) -> None:
        b = self.binding
        await consumer.start()
        how = "in batches" if b.batch is not None else "record by record"
        log.info("binding %s: delivering %s to %s %s", b.name, b.topic, b.sink, how)
        try:
            while not stop.is_set():
                records = await self._cut(consumer, stop)
                if records:
                    self._dispatch(records)
                await self._hold_or_release(consumer, len(records))
                await consumer.commit(self._completed_offsets())
                self._raise_if_a_send_failed()
                while self._full() and not stop.is_set():
                    await self._head_batch_progress(0.5)
                    await consumer.commit(self._completed_offsets())
                    self._raise_if_a_send_failed()
        finally:
            await consumer.close()  # runs on_revoke: drains and commits what was accepted
            await self._abandon()
            if self._pacer is not None:
                await self._pacer.close()

    async def _cut(self, consumer: GroupConsumer, stop: asyncio.Event) -> list[PolledRecord]:
        records: list[PolledRecord] = []
        generation = consumer.generation
        deadline: float | None = None
        while len(records) < self.max_records and not stop.is_set():
            if deadline is None:
                # The cut's first record: asked for alone, since librdkafka's consume() waits
                # out its whole timeout unless it fills the request (asking for max_records
                # held a cut's first records up to IDLE_POLL before max_wait even began).
                polled = await consumer.poll(1, IDLE_POLL)
            else:
                # Until max_wait after the first record, or at once (max_wait 0, or late):
                # what is already fetched.
                left = max(0.0, deadline - time.monotonic())
                polled = await consumer.poll(self.max_records - len(records), left)
            if consumer.generation != generation:
                # Records read before a rebalance: the partitions' owner re-reads them.
                records, generation, deadline = [], consumer.generation, None
                continue
            if self.observer is not None and polled:
                self.observer.polled(polled, time.time())
            records.extend(polled)
            if deadline is not None:
                if time.monotonic() >= deadline:
                    break
            elif polled:
                deadline = time.monotonic() + self.max_wait
            elif self._batches:
                break  # idle: let the loop commit what completed
        return records

    def _dispatch(self, records: list[PolledRecord]) -> None:
        if self.first_dispatch is None:
            self.first_dispatch = time.perf_counter()
        if self.observer is not None:
            self.observer.cut(records, time.time())
        by_key = self.shape.group(records)
        # A cut's records are in read order, ascending offsets per partition: each partition's
        # last is its highest (dict() keeps the last of each key; built in C, not per record).
        last = dict(zip(map(_partition_of, records), map(_offset_of, records), strict=True))
        batch = _Batch({p: o + 1 for p, o in last.items()}, len(records))
        if self.binding.batch is None:
            self._queue_records(by_key, batch)
        else:
            self._queue_sends(by_key, batch)
        self._batches.append(batch)
        self._held += batch.records

    def _queue_records(self, by_key: dict[str, list[PolledRecord]], batch: _Batch) -> None:
        """Per record: each key's records join its lane; a key new to the lanes is ready."""
        batch.unaccepted = batch.records
        lanes, ready = self._lanes, self._ready
        for key, group in by_key.items():
            lane = lanes.get(key)
            if lane is None:
                lanes[key] = lane = deque()
                ready.append(key)
            lane.extend((r, batch) for r in group)
        if ready:
            self._work.set()
        if not self._senders:
            self._senders = [
                asyncio.create_task(self._sender()) for _ in range(self.max_concurrent_sends)
            ]

    def _queue_sends(self, by_key: dict[str, list[PolledRecord]], batch: _Batch) -> None:
        per_send = self.shape.max_records
        for key, group in _sends_of(by_key, per_send):
            waiting = self._waiting.get(key)
            if waiting is not None and len(waiting.records) + len(group) <= per_send:
                # Not posted yet: the records join it, after the key's earlier ones.
                assert waiting.task is not None
                waiting.records.extend(group)
                batch.sends.append(waiting.task)
                continue
            waiting = _Waiting(group)
            previous = self._tails.get(key)
            task = asyncio.create_task(self._send(key, waiting, previous))
            waiting.task = task
            self._waiting[key] = waiting
            self._tails[key] = task
            task.add_done_callback(functools.partial(self._forget_tail, key))
            task.add_done_callback(functools.partial(self._note_accepted, key, waiting))
            batch.sends.append(task)

    async def _hold_or_release(self, consumer: GroupConsumer, cut: int) -> None:
        """Whether keys' next sends are held after this cut. The backlog (a hop to the
        consumer's thread) is asked only when it decides: a full cut of a per-key binding with
        room left in flight. Meanwhile the cut's new sends wait for the answer (they would be
        posted during the hop, each with one cut's records)."""
        # A full cut: reading a backlog, where a send's records must leave the window at
        # acceptance, not completion, for the next ones to be read meanwhile (`_calls_pace`).
        self._catching_up = cut >= self.max_records
        if self.hold_while_behind > 0 and self._catching_up and not self._full():
            self._released.clear()
            self._hold_while_behind(await consumer.backlog())
        else:
            self._released.set()

    def _hold_while_behind(self, behind: int) -> None:
        """Enough records still in Kafka (`behind`) to fill the window: keys' next sends are
        held (bounded) until it fills, so more of each key's records join them. Otherwise they
        go: a backlog too small to fill the window (a moment's stall in a stream, where holding
        would only add latency), or the window full (only posting makes room)."""
        room = self.max_records_in_flight - self._held
        if behind >= room > 0:
            self._released.clear()
        else:
            self._released.set()

    async def _head_batch_progress(self, timeout: float) -> None:
        """Until the oldest batch in flight may be done (at most `timeout` seconds)."""
        head = self._batches[0]
        if head.sends:
            await asyncio.wait(head.sends, timeout=timeout)
            return
        self._progress.clear()
        if not head.done():
            await self._per_record_progress(timeout)

    async def _per_record_progress(self, timeout: float) -> None:
        """Until a per-record batch is all accepted or a send failed (`_progress`, cleared by
        the caller), at most `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0)):
                await self._progress.wait()

    def _full(self) -> bool:
        return (
            len(self._batches) >= self.max_batches_in_flight
            or self._held >= self.max_records_in_flight
        )

    def _forget_tail(self, key: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._send_failure is None:
            self._send_failure = task.exception()
        if self._tails.get(key) is task:
            del self._tails[key]
        waiting = self._waiting.get(key)
        if waiting is not None and waiting.task is task:  # cancelled before it was posted
            del self._waiting[key]

    def _note_accepted(self, key: str, waiting: _Waiting, task: asyncio.Task[None]) -> None:
        """The key's next send paces on this one's invocation (before it wakes: callbacks
        run in the order added, and the next send's wait on this task is added later)."""
        if self._pacer is None or task.cancelled() or task.exception() is not None:
            return
        if waiting.idempotency_key is not None:  # batched sends always carry one
            b = self.binding
            self._pacer.accepted(key, b.service, b.handler, waiting.idempotency_key)

    def _completed_offsets(self) -> dict[int, int]:
        """Offsets of the leading batches whose sends were all accepted (removed from the queue)."""
        offsets: dict[int, int] = {}
        while self._batches and self._batches[0].done():
            batch = self._batches.popleft()
            self._held -= batch.records
            for partition, offset in batch.next_offsets.items():
                offsets[partition] = max(offsets.get(partition, 0), offset)
        return offsets

    def _raise_if_a_send_failed(self) -> None:
        """A send that raised (not a refusal: those are retried) holds its batch and every
        later one back from the commit; stop loudly, so the supervisor restarts from the
        committed offsets instead of delivering around the hole."""
        cause = self._send_failure
        if cause is not None:
            raise DeliveryFailed(
                f"binding {self.binding.name}: a send to {self.binding.sink} failed "
                f"({type(cause).__name__}: {cause}); restarting from the committed offsets"
            ) from cause

    # --- sending --------------------------------------------------------------------------

    async def _send(self, key: str, waiting: _Waiting, previous: asyncio.Task[None] | None) -> None:
        stages = SendStages(time.time()) if self.observer is not None else None
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # per-key FIFO: accepted before the next is posted
        if previous is not None and (previous.cancelled() or previous.exception() is not None):
            # The chain was abandoned (rebalance, shutdown) or broke: never post past a hole.
            raise asyncio.CancelledError
        if stages is not None:
            stages.previous_accepted = time.time()
        if self._pacer is not None:
            # Until the previous invocation completed (bounded): records keep joining this send.
            # Not for a full send (none could join), nor while reading a backlog: the hold
            # gathers each key's share of the window into its send there, and waiting for
            # completion as well only left Restate idle between windows (10,000 per key: 0.87x
            # the rate, an attach per send; benchmarks/e2e_throughput.py). Restate queues the
            # key's sends meanwhile, as it does full ones.
            full = len(waiting.records) >= self.shape.max_records
            await self._pacer.wait(key, at_once=full or self._catching_up)
        if not self._released.is_set():
            # Behind: more of the key's records join while the window fills (bounded).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.hold_while_behind):
                    await self._released.wait()
        if stages is not None:
            stages.paced = time.time()
        records = waiting.records
        request: Request | None = None
        if self._calls_pace(key, records):
            request = await self._call(key, waiting, stages)
            if request is None:
                return  # completed, so accepted
        delay = 0.05
        while True:
            async with self._send_slots:
                if request is None:
                    # Posting now: from here on its records are fixed, later ones start a send.
                    if self._waiting.get(key) is waiting:
                        del self._waiting[key]
                    request = self.shape.request(key, records)
                    if stages is not None:
                        stages.posted = time.time()
                problem = await self._attempt(request, len(records))
            if problem is None:
                waiting.idempotency_key = request.headers.get("idempotency-key")
                self._observe_accepted(key, records, stages, called=False)
                return
            delay = await self._retry_later(key, records, request, problem, delay)

    def _calls_pace(self, key: str, records: list[PolledRecord]) -> bool:
        """Whether the key's send goes as a call (`_call`): when the pacer allows one
        (`CompletionPacer.may_call`); not for a full send (nothing waits for its completion),
        nor while reading a backlog (the latest cut was full, or a quarter of the window is in
        flight): a call's records stay in the window, uncommitted, until it completes, which
        held the reading of a backlog back (10,000 records per send: 0.8x the rate of one-way
        sends, benchmarks/e2e_throughput.py)."""
        pacer = self._pacer
        return (
            self.calls
            and pacer is not None
            and not self._catching_up
            and self._held * 4 < self.max_records_in_flight
            and len(records) < self.shape.max_records
            and pacer.may_call(key)
        )

    async def _call(self, key: str, waiting: _Waiting, stages: SendStages | None) -> Request | None:
        """Post the key's waiting records as a call (`POST {Service}/{key}/{handler}` with the
        send's idempotency key, `CompletionPacer.call`), answered once the invocation
        completed: one request where a one-way send and the pacer's attach made two
        (restate-server's CPU per invocation 0.59 against 0.71 ms, the client's 0.17 against
        0.30: benchmarks/ingress_cost.py --variants idem-send-attach,idem-call). None once it
        answered 200. Otherwise the request, to be posted as a one-way send with the same
        idempotency key, which Restate answers for the same invocation: that tells acceptance
        (commits and the key's next send wait for it) when the call answered anything else (a
        refusal, or the handler's failure), raised, or outlived COMPLETION_WAIT."""
        client, pacer = self._client, self._pacer
        assert client is not None and pacer is not None
        records = waiting.records
        if self._waiting.get(key) is waiting:
            del self._waiting[key]  # posting now: later records start a send
        request = self.shape.request(key, records)
        if stages is not None:
            stages.posted = time.time()
        path = request.path.removesuffix("/send")
        if not await pacer.call(key, lambda: client.post(path, request.body, request.headers)):
            return request
        self.delivered += len(records)
        self.sends += 1
        self._observe_accepted(key, records, stages, called=True)
        return None

    def _observe_accepted(
        self, key: str, records: list[PolledRecord], stages: SendStages | None, *, called: bool
    ) -> None:
        if self.observer is not None and stages is not None:
            stages.accepted, stages.called = time.time(), called
            self.observer.accepted(key, records, stages)

    async def _sender(self) -> None:
        """Posts the head record of ready lanes, one at a time, until cancelled. A send that
        raises stops this sender with its key's lane left unposted: nothing of the key is
        posted past the hole, and the delivery restarts (`_raise_if_a_send_failed`)."""
        lanes, ready = self._lanes, self._ready
        while True:
            if not ready:
                self._work.clear()
                await self._work.wait()
                continue
            key = ready.popleft()
            lane = lanes[key]
            record, batch = lane.popleft()
            request = self.shape.request(key, [record])
            delay = 0.05
            try:
                while (problem := await self._attempt(request, 1)) is not None:
                    delay = await self._retry_later(key, [record], request, problem, delay)
            except Exception as exc:
                if self._send_failure is None:
                    self._send_failure = exc
                self._progress.set()  # a drain waiting for the lanes stops waiting
                return
            batch.unaccepted -= 1
            if batch.unaccepted == 0:
                self._progress.set()
            if lane:
                ready.append(key)
            elif lanes.get(key) is lane:
                del lanes[key]

    async def _attempt(self, request: Request, records: int) -> str | None:
        """Posts `request` once: None if Restate accepted it (200 or 202), else why not."""
        assert self._client is not None
        try:
            answer = await self._client.post(request.path, request.body, request.headers)
        except IngressSendError as exc:
            return str(exc)
        if answer.status in (200, 202):
            self.delivered += records
            self.sends += 1
            return None
        return f"HTTP {answer.status}: {answer.text()[:300]}"

    async def _retry_later(
        self, key: str, records: list[PolledRecord], request: Request, problem: str, delay: float
    ) -> float:
        """Not accepted: the same send is retried (same idempotency key) after `delay`; the
        key's later records wait, and nothing of its batch is committed meanwhile. The next
        delay."""
        first = records[0]
        log.warning(
            "binding %s: send of %d records for key %r (%s[%d]@%d...) to %s not "
            "accepted (%s); retrying in %.2fs",
            self.binding.name, len(records), key, first.topic, first.partition, first.offset,
            f"{self.ingress_url}/{request.path}", problem, delay,
        )  # fmt: skip
        await asyncio.sleep(delay)
        return min(delay * 2, 2.0)

    # --- rebalances and shutdown ----------------------------------------------------------

    def _on_revoke(self, partitions: list[int]) -> Mapping[int, int]:
        """On the consumer's thread: drain in-flight sends (bounded), return what to commit."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return {}
        future = asyncio.run_coroutine_threadsafe(self._drain(REVOKE_DRAIN_TIMEOUT), loop)
        return future.result()

    async def _drain(self, timeout: float) -> dict[int, int]:
        self._released.set()  # held sends go now: the drain waits for them
        sends = list({t: None for batch in self._batches for t in batch.sends})
        if sends:
            await asyncio.wait(sends, timeout=timeout)
        deadline = time.monotonic() + timeout
        while self._lanes and self._send_failure is None:
            # Per record: until every lane is empty (the last batch accepted) or a send failed.
            self._progress.clear()
            await self._per_record_progress(deadline - time.monotonic())
            if time.monotonic() >= deadline:
                break
        offsets = self._completed_offsets()
        await self._abandon()  # the rest is re-read by the partitions' next owner
        return offsets

    async def _abandon(self) -> None:
        """Cancel sends not accepted yet. One already posted may still be accepted later:
        harmless, since it was posted after the key's earlier records were accepted."""
        tasks = list({t: None for batch in self._batches for t in batch.sends})
        tasks += self._senders
        self._senders = []
        self._batches.clear()
        self._held = 0
        self._tails.clear()
        self._waiting.clear()
        self._lanes.clear()
        self._ready.clear()
        for task in tasks:
            task.cancel()
        # A send that raised was reported by `_raise_if_a_send_failed`; its records are re-read.
        await asyncio.gather(*tasks, return_exceptions=True)

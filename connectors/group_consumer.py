"""A consumer-group member for restate-stream's own delivery (batched bindings).

confluent-kafka's Consumer blocks, so every call on it runs on one dedicated thread; asyncio
code awaits them. Offsets are stored and committed only when the caller says so (never
automatically). Rebalance callbacks run on that thread, inside `poll`: `on_revoke` gets the
revoked partitions and returns offsets that are safe to commit before they go (everything
before them was accepted downstream); they are committed synchronously, then given up.

A `poll` during which the assignment changed returns nothing: records fetched before the
change may sit next to records fetched after it in one result, and taking either could skip
or reorder records. The partitions it returned records of are sought back to their committed
offsets (or the start policy), so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from operator import is_not, itemgetter
from typing import Any, NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connectors import errors as kafka_errors
from connectors.gc_pause import collection_paused
from connectors.logs import Config, client_properties

log = logging.getLogger("connectors.group_consumer")

# Seconds the backlog waits, once per assignment, for the group's committed offsets.
COMMITTED_TIMEOUT = 1.0
# Once librdkafka's local queue holds `queued.min.messages` (100,000, counted over all the
# consumer's partitions), it stops fetching for `fetch.queue.backoff.ms`: 1 s by default. A
# member that drains those records in under a second (a backlog read at 130,000 records/s)
# then waited with its queue empty: no fetch, no send, nothing running in Restate for 250-370
# ms of a 1.5 s read of 200,000 records (librdkafka's `debug: fetch`: "Fetch backoff for
# 1000ms: Local: Queue full"). Re-deciding every 10 ms instead costs a timer, not a request
# (a member whose queue stays full: 3 ms of CPU per second, against 0.5). The caller's
# properties may set it otherwise.
FETCH_PROPERTIES: dict[str, Any] = {"fetch.queue.backoff.ms": 10}


_tuple_new = tuple.__new__


class PolledRecord(NamedTuple):
    """One record read (a tuple: a poll builds one per record; a frozen dataclass cost the
    delivery 3x the CPU to build)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def _headers(raw: Any) -> tuple[tuple[str, bytes | None], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in items)


def polled_records(messages: list[Message], topic: str, group_id: str) -> list[PolledRecord]:
    """The records of one consume() of `topic` (the consumer's only one): errors raised if
    fatal, else logged and skipped. Built column by column, each field's method mapped over
    the messages in C: a Python loop over them was a third of the delivery's poll CPU."""
    errors = list(map(Message.error, messages))
    if any(map(is_not, errors, repeat(None))):  # not count(None): KafkaError's == is broken
        messages = _without_errors(messages, errors, group_id)
    stamps: list[tuple[int, int]] = list(map(Message.timestamp, messages))
    timestamps: Iterable[int | None] = map(itemgetter(1), stamps)
    if TIMESTAMP_NOT_AVAILABLE in map(itemgetter(0), stamps):
        timestamps = [None if kind == TIMESTAMP_NOT_AVAILABLE else ts for kind, ts in stamps]
    raw_headers: list[Any] = list(map(Message.headers, messages))
    headers: Iterable[tuple[tuple[str, bytes | None], ...]] = repeat(())
    if raw_headers.count(None) != len(raw_headers):
        headers = [_headers(h) if h else () for h in raw_headers]
    columns = zip(
        repeat(topic),
        map(Message.partition, messages),
        map(Message.offset, messages),
        timestamps,
        map(Message.key, messages),
        map(Message.value, messages),
        headers,
    )
    # tuple.__new__, not PolledRecord(...): its generated __new__ is a Python frame per record.
    return list(map(_tuple_new, repeat(PolledRecord), columns))


def _without_errors(
    messages: list[Message], errors: list[KafkaError | None], group_id: str
) -> list[Message]:
    for error in errors:
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: %s", group_id, error.str())
    return [m for m, error in zip(messages, errors, strict=True) if error is None]


# partitions revoked -> {partition: next offset to commit} (may be empty)
RevokeHandler = Callable[[list[int]], Mapping[int, int]]


class GroupConsumer:
    def __init__(
        self,
        config: Config,
        topic: str,
        group_id: str,
        *,
        start: str = "earliest",
        on_revoke: RevokeHandler | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.start_at = start
        self.on_revoke = on_revoke
        self.properties = {
            **FETCH_PROPERTIES,
            **client_properties(config),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": start,
            **(properties or {}),
            "on_commit": self._commit_answered,
        }
        # Bumped by every revoke and assign: `poll` compares it before and after.
        self.generation = 0
        self.assigned: set[int] = set()
        # {partition: offset} an asynchronous commit failed for (its coordinator died, say),
        # committed again with the next commit: nothing else would once the topic goes quiet.
        self._failed: dict[int, int] = {}
        # {partition: highest offset sent}: a failure answered after a later commit was sent
        # is that later commit's to settle; committing the failed one again would rewind it.
        self._sent: dict[int, int] = {}
        # {partition: where reading starts} for partitions not read from yet since assigned
        # (their position is unknown until then): the backlog counts them from there.
        # None: the group's coordinator did not answer.
        self._starts: dict[int, int | None] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"kafka:{group_id}")
        self._consumer: Consumer | None = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        await self._call(self._start)

    def _start(self) -> None:
        self._consumer = kafka_errors.new_client("Kafka consumer", Consumer, self.properties)
        self._consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.generation += 1
        self.assigned = {tp.partition for tp in partitions}
        self._starts.clear()
        log.info("%s: assigned %s%s", self.group_id, self.topic, sorted(self.assigned))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.generation += 1
        revoked = sorted(tp.partition for tp in partitions)
        offsets = dict(self.on_revoke(revoked)) if self.on_revoke is not None else {}
        if offsets:
            try:
                consumer.commit(offsets=self._topic_partitions(offsets), asynchronous=False)
            except KafkaException as exc:  # the group moved on: the new owner re-reads them
                log.warning("%s: commit on revoke failed: %s", self.group_id, exc)
        self.assigned -= set(revoked)
        self._forget(revoked)
        log.info("%s: revoked %s%s", self.group_id, self.topic, revoked)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may own them already; committing could rewind it.
        self.generation += 1
        lost = sorted(tp.partition for tp in partitions)
        if self.on_revoke is not None:
            self.on_revoke(lost)
        self.assigned -= set(lost)
        self._forget(lost)
        log.warning("%s: lost %s%s", self.group_id, self.topic, lost)

    def _topic_partitions(self, offsets: Mapping[int, int]) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())]

    async def poll(self, max_records: int, timeout: float) -> list[PolledRecord]:
        """Up to `max_records` records: as soon as that many are fetched, else what was
        fetched once `timeout` seconds passed (librdkafka's consume() does not return early
        with fewer)."""
        result: list[PolledRecord] = await self._call(self._poll, max_records, timeout)
        return result

    def _poll(self, max_records: int, timeout: float) -> list[PolledRecord]:
        consumer = self._consumer
        assert consumer is not None, "start() first"
        generation = self.generation
        messages = consumer.consume(max_records, timeout)
        if self.generation != generation:
            self._rewind({m.partition() or 0 for m in messages if m.error() is None})
            return []
        # A record is two tuples, all reachable until it returns (gc_pause.py). Not over
        # consume(), which waits for the broker.
        with collection_paused():
            return polled_records(messages, self.topic, self.group_id)

    async def backlog(self) -> int:
        """Records in Kafka past this consumer's position in its partitions, by the high
        watermarks librdkafka cached from its latest fetches. A partition not read from yet
        since it was assigned counts from where its reading starts (the group's committed
        offset, asked once per assignment), one whose watermark is unknown yet counts 0."""
        result: int = await self._call(self._backlog)
        return result

    def _backlog(self) -> int:
        consumer = self._consumer
        if consumer is None or not self.assigned:
            return 0
        try:
            positions = consumer.position([TopicPartition(self.topic, p) for p in self.assigned])
            behind = 0
            for tp in positions:
                offsets = consumer.get_watermark_offsets(tp, cached=True)  # None: unknown
                low, high = offsets if offsets is not None else (-1, -1)
                position = tp.offset if tp.offset >= 0 else self._reading_starts(tp.partition, low)
                if position >= 0 and high > position:
                    behind += high - position
            return behind
        except KafkaException:
            return 0

    def _reading_starts(self, partition: int, low: int) -> int:
        """Where reading `partition` starts (-1: unknown): its committed offset, else the
        earliest (cached low watermark) or the latest (no backlog) per `start`."""
        if partition not in self._starts:
            assert self._consumer is not None
            unread = [TopicPartition(self.topic, p) for p in self.assigned - self._starts.keys()]
            # Asked once per assignment, even if unanswered: on the consumer's thread, a
            # coordinator that does not answer would hold every poll after a full cut.
            self._starts.update(dict.fromkeys(tp.partition for tp in unread))
            try:
                committed = self._consumer.committed(unread, timeout=COMMITTED_TIMEOUT)
            except KafkaException as exc:
                log.info(
                    "%s: committed offsets of %s not known (%s): its unread partitions count 0 "
                    "in the backlog",
                    self.group_id, self.topic, exc,
                )  # fmt: skip
                committed = []
            for tp in committed:
                self._starts[tp.partition] = tp.offset  # OFFSET_INVALID (< 0): none committed
        start = self._starts[partition]
        if start is None:
            return -1
        if start >= 0:
            return start
        return low if self.start_at == "earliest" else -1

    def _rewind(self, partitions: set[int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        owned = sorted(partitions & self.assigned)
        if not owned:
            return
        committed = consumer.committed([TopicPartition(self.topic, p) for p in owned], timeout=10)
        fallback = OFFSET_BEGINNING if self.start_at == "earliest" else OFFSET_END
        for tp in committed:
            offset = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else fallback
            consumer.seek(TopicPartition(self.topic, tp.partition, offset))
        log.info(
            "%s: assignment changed mid-poll; re-reading %s from committed", self.group_id, owned
        )

    async def commit(self, offsets: Mapping[int, int]) -> None:
        """Commit {partition: next offset} (asynchronously: librdkafka sends them in order),
        and again what an earlier commit failed for."""
        if offsets or self._failed:
            await self._call(self._commit, dict(offsets))

    def _commit(self, offsets: dict[int, int]) -> None:
        assert self._consumer is not None
        for partition, offset in self._failed.items():
            offsets[partition] = max(offsets.get(partition, offset), offset)
        self._failed.clear()
        if not offsets:
            return
        for partition, offset in offsets.items():
            self._sent[partition] = max(self._sent.get(partition, offset), offset)
        try:
            self._consumer.commit(offsets=self._topic_partitions(offsets), asynchronous=True)
        except KafkaException as exc:  # e.g. no longer a member: the records are re-read
            log.warning("%s: commit %s failed: %s", self.group_id, offsets, exc)

    def _commit_answered(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's answer to a commit, on the consumer's thread (during a poll). An
        asynchronous commit raises nothing: a refused one is logged with its partitions and
        committed again with the next commit, unless a later commit of that partition was
        sent meanwhile (resending it would rewind the group) or the partition left."""
        refused = []
        for tp in partitions:
            if tp.topic != self.topic or tp.offset < 0:
                continue
            if (error or tp.error) is not None:
                refused.append(tp)
                latest = tp.offset >= self._sent.get(tp.partition, tp.offset)
                if latest and tp.partition in self.assigned:
                    self._failed[tp.partition] = tp.offset
            elif tp.offset >= self._failed.get(tp.partition, tp.offset):
                self._failed.pop(tp.partition, None)  # a later commit went through
        if refused:
            first = error or refused[0].error
            reason = first.str() if first is not None else "refused"
            where = ", ".join(f"p{tp.partition}@{tp.offset}" for tp in refused)
            log.warning(
                "%s: commit of %s %s refused: %s; committed again with the next commit",
                self.group_id, self.topic, where, reason,
            )  # fmt: skip

    def _forget(self, partitions: list[int]) -> None:
        # Another member may own them now: committing them could rewind it.
        for partition in partitions:
            self._failed.pop(partition, None)
            self._sent.pop(partition, None)
            self._starts.pop(partition, None)

    async def close(self) -> None:
        """Leave the group (on_revoke runs one last time) and stop the thread."""
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()

"""What restate-stream's consumer sends for a binding: which object a record goes to, how many
records one invocation may carry, and the request (path, body, headers) for them.

A batched binding sends a batch body (batch/wire.py) per (object key, batch); a per-record
binding with `delivery: consumer` sends each record alone, exactly as a Restate subscription
would invoke its handler: the raw value as the body (a null value as an empty body), the
coordinates as `kafka.*` headers, plus the record's own Kafka headers. The per-record bound
handler (runtime/bound.py) then runs unchanged for both deliveries.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol
from urllib.parse import quote

from connectors.group_consumer import PolledRecord
from restate_stream.batch.objects import batch_object_key
from restate_stream.batch.wire import encode_batch
from restate_stream.bindings import Binding
from restate_stream.runtime.event import (
    RECORD_HEADERS_HEADER,
    KafkaCoordinates,
    encode_record_headers,
    object_key_for,
)

RECORD_IDEMPOTENCY_PREFIX = "rs-record/"
MAX_TEMPLATES = 10_000  # per-record sends: keys whose path and shared headers are kept

_topic_of, _partition_of, _key_of = itemgetter(0), itemgetter(1), itemgetter(4)  # PolledRecord


@dataclass(frozen=True)
class Request:
    path: str  # after the ingress URL: "{Service}/{key}/{handler}/send"
    body: bytes
    headers: dict[str, str]


class SendShape(Protocol):
    max_records: int  # per send

    def object_key(self, record: PolledRecord) -> str: ...

    def group(self, records: list[PolledRecord]) -> dict[str, list[PolledRecord]]:
        """`records` by object key, each key's in read order."""
        ...

    def request(self, key: str, records: list[PolledRecord]) -> Request: ...


class _SendPaths:
    """A binding's send paths: its service and handler quoted once, each object key's
    quoting remembered (quote() is a few Python calls; keys repeat send after send)."""

    def __init__(self, binding: Binding) -> None:
        self.service = quote(binding.service, safe="")
        self.handler = quote(binding.handler, safe="")
        self.quoted = functools.lru_cache(maxsize=4096)(functools.partial(quote, safe=""))

    def __call__(self, key: str | None) -> str:
        if key is None:
            return f"{self.service}/{self.handler}/send"
        return f"{self.service}/{self.quoted(key)}/{self.handler}/send"


def group_each(
    records: list[PolledRecord], object_key: Callable[[PolledRecord], str]
) -> dict[str, list[PolledRecord]]:
    """`records` by object key, asking `object_key` of each record."""
    by_key: dict[str, list[PolledRecord]] = {}
    for r in records:
        by_key.setdefault(object_key(r), []).append(r)
    return by_key


def idempotency_key(binding: str, key: str, records: list[PolledRecord]) -> str:
    """Names exactly the records of one batch send: a resend of the same ones is one invocation.

    The ranges (not just the first offset) are in it: a batch cut differently after a
    restart must not be mistaken for the earlier, smaller one and dropped by Restate.
    """
    first, last = records[0], records[-1]
    topics, partitions = list(map(_topic_of, records)), list(map(_partition_of, records))
    if topics.count(first.topic) == partitions.count(first.partition) == len(records):
        # One source partition (a key's records, or a partition's), counted in C.
        parts = [f"{first.topic}/{first.partition}:{first.offset}-{last.offset}:{len(records)}"]
    else:
        ranges: dict[tuple[str, int], list[int]] = {}
        for r in records:
            ranges.setdefault((r.topic, r.partition), []).append(r.offset)
        parts = [f"{t}/{p}:{o[0]}-{o[-1]}:{len(o)}" for (t, p), o in sorted(ranges.items())]
    digest = hashlib.sha256("\n".join([binding, key, *parts]).encode()).hexdigest()[:32]
    return f"rs-batch-{digest}"


def record_idempotency_key(group: str, topic: str, partition: int, offset: int) -> str:
    """One record in one consumer group: what Restate's Kafka ingress deduplicates on. The
    group, not the binding's name: a binding renamed with its group kept resends nothing."""
    return f"{RECORD_IDEMPOTENCY_PREFIX}{group}/{topic}/{partition}/{offset}"


class BatchShape:
    def __init__(self, binding: Binding) -> None:
        assert binding.batch is not None, f"binding {binding.name} is not batched"
        self.binding = binding
        self.max_records = binding.batch.max_records
        self.per = binding.batch.per
        self.json_values = binding.format == "json"  # valid JSON values travel inline
        self.path = _SendPaths(binding)

    def object_key(self, record: PolledRecord) -> str:
        return batch_object_key(self.per, record.topic, record.partition, record.key)

    def group(self, records: list[PolledRecord]) -> dict[str, list[PolledRecord]]:
        # By the raw key (or source partition) first, asking the object key once per group:
        # asking it per record was most of a cut's grouping CPU.
        by_raw: defaultdict[object, list[PolledRecord]] = defaultdict(list)
        raws: Iterable[object] = (
            zip(map(_topic_of, records), map(_partition_of, records), strict=True)
            if self.per == "partition"
            else map(_key_of, records)
        )
        for raw, r in zip(raws, records, strict=True):  # fields read in C: the loop only appends
            by_raw[raw].append(r)
        by_key: dict[str, list[PolledRecord]] = {}
        for group in by_raw.values():
            key = self.object_key(group[0])
            if key in by_key:  # two raw keys, one object (None and b""): keep read order
                return group_each(records, self.object_key)
            by_key[key] = group
        return by_key

    def request(self, key: str, records: list[PolledRecord]) -> Request:
        headers = {
            "content-type": "application/json",
            "idempotency-key": idempotency_key(self.binding.name, key, records),
        }
        return Request(
            self.path(key),
            encode_batch(records, json_values=self.json_values),
            headers,
        )


class RecordShape:
    """One invocation per record, as a subscription makes it. A keyed binding's object is the
    record key's (`object_key_for`: a key that is not UTF-8 gets a `b64:` object instead of
    blocking its partition); an unkeyed one's sends name no key, and records of one key still
    go one after another. Keyless records of an unkeyed binding are each their own chain: they
    name no object, so nothing orders them (nor does a subscription), and chaining them all on
    one key would post them one at a time.

    `binding.keeps_high_water`: the target drops a record at or below its object's high-water
    (runtime/high_water.py), so a re-sent record is a no-op there and the send carries no
    idempotency key: exactness then does not depend on how long Restate keeps a key (Restate
    1.7 still keeps every completed invocation for the handler's retention, keyed or not).
    Other targets keep the key."""

    max_records = 1

    def __init__(self, binding: Binding) -> None:
        self.binding = binding
        self.keeps_high_water = binding.keeps_high_water
        self.path = _SendPaths(binding)
        # (object key, record key, topic) -> the send's path and the headers its records share:
        # built once per key rather than per record (quoting the path and encoding the key
        # were most of a request's building; py-spy).
        self._templates: dict[tuple[str, bytes | None, str], tuple[str, dict[str, str]]] = {}

    def object_key(self, record: PolledRecord) -> str:
        if record.key is None and not self.binding.keyed:
            # Unique per record; a real key spelling the same would only be ordered with it.
            return f"\0{record.partition}/{record.offset}"
        return object_key_for(record.key)

    def group(self, records: list[PolledRecord]) -> dict[str, list[PolledRecord]]:
        return group_each(records, self.object_key)

    def request(self, key: str, records: list[PolledRecord]) -> Request:
        (r,) = records
        template = self._templates.get((key, r.key, r.topic))
        if template is None:
            template = self._template(key, r)
        path, shared = template
        headers = shared.copy()  # in to_headers' order: partition and offset are in it
        headers["kafka.partition"] = str(r.partition)
        headers["kafka.offset"] = str(r.offset)
        if not self.keeps_high_water:
            headers["idempotency-key"] = record_idempotency_key(
                self.binding.consumer_group, r.topic, r.partition, r.offset
            )
        if r.timestamp_ms is not None:  # as Restate's subscription writes it: epoch millis
            headers["kafka.timestamp"] = str(r.timestamp_ms)
        if r.headers:
            headers[RECORD_HEADERS_HEADER] = encode_record_headers(r.headers)
        return Request(path, r.value or b"", headers)

    def _template(self, key: str, r: PolledRecord) -> tuple[str, dict[str, str]]:
        if len(self._templates) >= MAX_TEMPLATES:
            self._templates.clear()  # bounded: keys seldom seen again are built anew
        coordinates = KafkaCoordinates(r.topic, r.partition, r.offset, None, r.key, None)
        shared = {"content-type": "application/octet-stream", **coordinates.to_headers()}
        path = self.path(key if self.binding.keyed else None)
        template = self._templates[(key, r.key, r.topic)] = (path, shared)
        return template


def shape_for(binding: Binding) -> SendShape:
    """Batched targets always keep a high-water, and their sends keep their keys."""
    if binding.batch is not None:
        return BatchShape(binding)
    return RecordShape(binding)

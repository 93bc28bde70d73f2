"""The invocation body of a batched binding: many records of one object key, as JSON.

Version 4 (what the delivery writes when every record's value goes inline, with a timestamp
and no headers: a JSON binding's usual batch), by column:

    {"v": 4, "t": [topic, ...], "k": [key base64 | null, ...],
     "ti": topic index | [topic index, ...], "ki": key index | [key index, ...],
     "p": partition | [partition, ...], "o": [offset, ...], "ts": [ts millis, ...],
     "vals": [value, ...], "vs": where the first value starts, "len": [value length, ...]}

Each record is one place in the columns; "t" and "k" hold each topic and key once. "ti", "ki"
and "p" are one number when every record shares it (a `per: key` body's records share all
three, a `per: partition` body's its topic and partition). The worker's one parse of the body
yields a few lists of numbers and the values parsed, and builds its records from them in C
(version 2's list per record, walked in Python, was most of a batch's decoding in the
worker). The values are spliced in byte for byte, one comma apart, from "vs" on: "len" gives
each one's raw bytes as a slice of the body, worked out only when a record is built.

Version 3 (what the delivery wrote before version 4; still read) has the same columns, but
"ti", "ki" and "p" always lists, and "at": [start, end, ...] instead of "vs" and "len" (its
per-record lists were a third of the body's numbers to write, parse and check).

Version 2 (what the delivery writes for any other batch: tombstones, headers, values that are
not JSON; and what a worker before version 3 reads):

    {"v": 2,
     "r": [[key base64 | null, [[topic index, partition, offset, ts millis | null,
                                 headers [[name, value base64 | null], ...] | null,
                                 form, value], ...]], ...],
     "t": [topic, ...],
     "at": [start, end, ...]}

Records come in runs of one key (a `per: key` body is one run), so the key is written once
per run and the topic once per body. A record's value has one of three forms: 0, null (a
tombstone); 1, the value itself inline, when the binding's format is JSON and the value is
JSON orjson reads (so the worker's one parse of the body yields it parsed); 2, base64 (any
other value: bytes, Avro, or JSON that is not valid, which the worker then fails to decode
and dead-letters exactly as before). An inline value is spliced in byte for byte, and "at"
holds where each one starts and ends in the body, in order, so the worker takes the raw
value (for dead letters and `KafkaEvent.raw`) as a slice: exact, whatever its spacing.

Version 1 (still read, like version 2: a body may be in Restate's journal across an upgrade):

    {"v": 1, "records": [{"t": topic, "p": partition, "o": offset, "ts": millis | null,
                          "k": key base64 | null, "v": value base64 | null,
                          "h": [[header name, value base64 | null], ...]}, ...]}

JSON (not a binary format) so that a body can be read in Restate's UI and `restate
invocations describe`. Records are in the order they were read: per source partition,
ascending offsets.
"""

from __future__ import annotations

import binascii
import functools
import json
import operator
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate, repeat
from typing import Any, NamedTuple, Protocol

import orjson

from connectors.gc_pause import collection_paused
from restate_stream.runtime.event import Headers
from restate_stream.runtime.formats.json import UNPARSED

VERSION = 4  # the newest this worker reads (and its delivery writes, by column)
V3 = 3
V2 = 2
V1 = 1

# Value forms of a v2 record.
TOMBSTONE, INLINE_JSON, BASE64 = 0, 1, 2

# orjson refuses a document nested deeper than 1024; inline, a value sits 5 levels down.
# A value this long may be that deep (each level takes a byte), so its brackets are counted.
_DEEP_CHECK_BYTES = 1000

# Records from which a body is built by column (`_encode_inline`, version 4): its fixed cost
# per body is a few records' worth of the record-by-record loop.
_COLUMNS_FROM = 12
# Integers, one per record; the first three repeat a few values (`_columns_v3`), and in
# version 4 may be one number for all (`_columns_v4`).
_V3_COLUMNS = ("ti", "ki", "p", "o", "ts")
_INT = {int}


class WireError(ValueError):
    pass


class NewerWireVersion(WireError):
    """A body of a version this worker does not read yet, written by a newer restate-stream's
    delivery (a rolling upgrade): retried, for a worker that reads it, never dropped."""


class WireRecord(NamedTuple):
    """One record of a body (a tuple: decoding builds one per record, cheaply)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    # The value already parsed as JSON (it came inline), else UNPARSED.
    parsed: Any = UNPARSED

    @property
    def source(self) -> tuple[str, int]:
        return (self.topic, self.partition)


# binascii directly, not the base64 module's wrappers: the body's per-record cost is most of
# what a batched record costs the client and the worker (benchmarks/batch_ingress.py).
_tuple_new = tuple.__new__
_to_b64 = binascii.b2a_base64
_from_b64 = binascii.a2b_base64


def _b64(data: bytes | None) -> str | None:
    return None if data is None else _to_b64(data, newline=False).decode("ascii")


def _unb64(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise WireError(f"{what}: expected base64 text or null, got {type(text).__name__}")
    try:
        return _from_b64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what}: invalid base64: {exc}") from exc


class EncodableRecord(Protocol):
    """What `encode_batch` reads of a record (WireRecord, the consumer's PolledRecord): a
    tuple whose first seven items are these fields in this order (read by column too)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp_ms(self) -> int | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


def _b64_json(data: bytes | None) -> bytes:
    return b"null" if data is None else b'"%b"' % _to_b64(data, newline=False)


def inlinable(value: bytes) -> bool:
    """Whether a JSON binding's value travels inline: JSON that orjson reads (what the
    worker's parse_json would read with orjson too, so the value it gets is the same), not
    nested so deep that the body around it would pass orjson's depth limit."""
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return len(value) < _DEEP_CHECK_BYTES or value.count(b"[") + value.count(b"{") < 1000


def encode_batch(records: Sequence[EncodableRecord], *, json_values: bool = False) -> bytes:
    """The v2 body, written directly as bytes (json.dumps of one dict per record was most of
    the client's CPU per record); json.dumps only for what may need escaping (topic and
    header names). `json_values`: the binding's format is JSON, so valid values go inline.
    With garbage collection paused: what it builds per record is reachable until it returns."""
    with collection_paused():
        if json_values and len(records) >= _COLUMNS_FROM:
            columns = tuple(zip(*records, strict=False))
            if _all_inline(columns):
                return _encode_inline(columns)
        return _encode_each(records, json_values=json_values)


def _all_inline(columns: tuple[tuple[Any, ...], ...]) -> bool:
    """Whether every record is a timestamped, headerless value that goes inline: the case
    `_encode_inline` writes. Each test runs in C over a column (no Python call per record)."""
    timestamps, values, headers = columns[3], columns[5], columns[6]
    if None in timestamps or None in values or any(headers):
        return False
    try:
        deque(map(orjson.loads, values), maxlen=0)  # parsed and dropped: only validity counts
    except orjson.JSONDecodeError:
        return False  # one is not inline: each record is asked alone
    return max(map(len, values)) < _DEEP_CHECK_BYTES or all(map(_shallow, values))


def _shallow(value: bytes) -> bool:
    return len(value) < _DEEP_CHECK_BYTES or value.count(b"[") + value.count(b"{") < 1000


def _encode_inline(columns: tuple[tuple[Any, ...], ...]) -> bytes:
    """The version 4 body of records that all go inline with a timestamp and no headers, built
    column by column: orjson writes the columns of numbers, the values are joined, and "len"
    is their lengths: the per-record work is C's."""
    topic_names, partitions, offsets, timestamps, keys, values = columns[:6]
    topics, topic_indexes = _indexed(topic_names)
    distinct_keys, key_indexes = _indexed(keys)
    head = orjson.dumps(
        {
            "v": VERSION,
            "t": topics,
            "k": [_b64(key) for key in distinct_keys],
            "ti": topic_indexes,
            "ki": key_indexes,
            "p": partitions[0] if _all_same(partitions) else partitions,
            "o": offsets,
            "ts": timestamps,
        }
    )
    opening = head[:-1] + b',"vals":['
    return b"".join(
        (
            opening,
            b",".join(values),
            b'],"vs":%d,"len":' % len(opening),
            orjson.dumps(list(map(len, values))),
            b"}",
        )
    )


def _all_same(column: tuple[Any, ...]) -> bool:
    """Whether a column holds one item throughout (counted in C)."""
    return bool(column) and column.count(column[0]) == len(column)


def _indexed(column: tuple[Any, ...]) -> tuple[list[Any], int | list[int]]:
    """A column's distinct items, and each place's index among them: one number when the
    column holds one item throughout."""
    if _all_same(column):
        return [column[0]], 0
    index = {item: i for i, item in enumerate(dict.fromkeys(column))}
    return list(index), list(map(index.__getitem__, column))


def _encode_each(records: Sequence[EncodableRecord], *, json_values: bool) -> bytes:
    """The v2 body, record by record: any record (tombstones, headers, base64 values)."""
    topics: dict[str, int] = {}
    out = bytearray(b'{"v":2,"r":[')
    at: list[int] = []
    run_key: bytes | None = None
    in_run = False
    for r in records:
        key = r.key
        if not in_run:
            out += b"[%b,[" % _b64_json(key)
            run_key, in_run = key, True
        elif key != run_key:
            out += b"]],[%b,[" % _b64_json(key)
            run_key = key
        else:
            out += b","
        topic = topics.get(r.topic)
        if topic is None:
            topic = topics[r.topic] = len(topics)
        ts = r.timestamp_ms
        headers = (
            json.dumps(
                [[name, _b64(value)] for name, value in r.headers], separators=(",", ":")
            ).encode()
            if r.headers
            else b"null"
        )
        out += b"[%d,%d,%d,%b,%b," % (
            topic,
            r.partition,
            r.offset,
            b"null" if ts is None else b"%d" % ts,
            headers,
        )
        value = r.value
        if value is None:
            out += b"0,null]"
        elif json_values and inlinable(value):
            out += b"1,"
            at.append(len(out))
            out += value
            at.append(len(out))
            out += b"]"
        else:
            out += b'2,"%b"]' % _to_b64(value, newline=False)
    if in_run:
        out += b"]]"
    out += b'],"t":%b,"at":%b}' % (orjson.dumps(list(topics)), orjson.dumps(at))
    return bytes(out)


class Columns:
    """A version 3 or 4 body, its columns checked, its records not built yet: a handler of
    values takes `values` as they are (parsed with the body), and events are built from the
    columns, each asking for its raw bytes (`raw`) and coordinates (`record`) only if it needs
    them. `records()` builds them all (in C), as `decode_batch` gives them."""

    __slots__ = (
        "_body", "_keys", "_place_lists", "_places", "_records", "_sources", "_topics",
        "key_indexes", "offsets", "partitions", "timestamps", "topic_indexes", "values",
    )  # fmt: skip

    def __init__(
        self,
        body: bytes,
        topics: list[str],
        keys: list[bytes | None],
        ints: list[list[int]],
        values: list[Any],
        places: Callable[[], tuple[Iterable[int], Iterable[int]]],
        sources: tuple[set[int], set[int]],
    ) -> None:
        self._body, self._topics, self._keys, self.values = body, topics, keys, values
        self.topic_indexes, self.key_indexes, self.partitions, self.offsets, self.timestamps = ints
        self._places = places  # where each value starts and ends in the body, when asked
        self._place_lists: tuple[list[int], list[int]] | None = None
        self._records: list[WireRecord] | None = None  # built by `record`
        self._sources = sources  # the distinct topic indexes and partitions

    def __len__(self) -> int:
        return len(self.values)

    def one_source(self) -> tuple[str, int] | None:
        """The (topic, partition) of every record, if they share one (a body most often does;
        told when the body was read)."""
        topics, partitions = self._sources
        if len(topics) != 1 or len(partitions) != 1:
            return None
        return self._topics[next(iter(topics))], next(iter(partitions))

    def keys(self) -> Iterator[bytes | None]:
        """Each record's key, in order."""
        return map(self._keys.__getitem__, self.key_indexes)

    def raw(self, i: int) -> bytes:
        """The `i`th record's value as it came (a slice of the body)."""
        starts, ends = self._value_places()
        return self._body[starts[i] : ends[i]]

    def record(self, i: int) -> WireRecord:
        """The `i`th record (for an event's coordinates). All are built, in C, at the first
        ask: a handler that reads one event's coordinates mostly reads every one's."""
        if self._records is None:
            self._records = self.records()
        return self._records[i]

    def _value_places(self) -> tuple[list[int], list[int]]:
        """Where each value starts and ends in the body, worked out once."""
        if self._place_lists is None:
            starts, ends = self._places()
            self._place_lists = (list(starts), list(ends))
        return self._place_lists

    def records(self) -> list[WireRecord]:
        with collection_paused():
            n, body = len(self.values), self._body
            columns = zip(
                map(self._topics.__getitem__, self.topic_indexes),
                self.partitions,
                self.offsets,
                self.timestamps,
                self.keys(),
                # Each value's raw bytes (sliced in the comprehension: no slice object each).
                [body[s:e] for s, e in zip(*self._value_places(), strict=True)],
                repeat((), n),
                self.values,  # parsed
                strict=True,
            )
            return list(map(_tuple_new, repeat(WireRecord), columns))


def decode_batch(body: bytes) -> list[WireRecord]:
    """The records of a batch body (any version); WireError naming the record and field if
    malformed. With garbage collection paused: the parsed body and the records are reachable
    until it returns."""
    return records_of(decode_body(body))


def records_of(decoded: Columns | list[WireRecord]) -> list[WireRecord]:
    """The records of what `decode_body` gave: a v3 body's built from its columns."""
    return decoded.records() if isinstance(decoded, Columns) else decoded


def decode_body(body: bytes) -> Columns | list[WireRecord]:
    """A version 3 body's columns (its records built when asked), or an older body's records;
    WireError as `decode_batch`."""
    with collection_paused():
        return _decode(body)


def _decode(body: bytes) -> Columns | list[WireRecord]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"batch body is not JSON: {exc}") from exc
    version = doc.get("v") if isinstance(doc, dict) else None
    if version == VERSION:
        return _columns_v4(doc, body)
    if version == V3:
        return _columns_v3(doc, body)
    if version == V2:
        return _decode_v2(doc, body)
    if type(version) is int and version > VERSION:
        raise NewerWireVersion(
            f"batch body version {version}: this worker reads versions 1 to {VERSION} "
            "(upgrade it: a newer worker's delivery wrote this body)"
        )
    if version != V1 or not isinstance(doc.get("records"), list):
        raise WireError(
            'batch body: expected {"v": 4, "t": [...], ...}, {"v": 3, ...}, '
            '{"v": 2, "r": [...], ...} or {"v": 1, "records": [...]}'
        )
    return _decode_v1(doc["records"])


def _columns_v4(doc: dict[str, Any], body: bytes) -> Columns:
    """Version 4's columns, each checked whole (as `_columns_v3`); "ti", "ki" and "p" may be
    one number for every record, and the values' places come from "vs" and "len"."""
    values: Any = doc.get("vals")
    lengths: Any = doc.get("len")
    first: Any = doc.get("vs")
    if type(values) is not list or type(lengths) is not list or type(first) is not int:
        raise WireError('batch body v4: expected "vals" and "len" arrays and a "vs" number')
    n = len(values)
    if len(lengths) != n or not set(map(type, lengths)) <= _INT:
        raise WireError(f"len: expected {n} integers, a length per value")
    if n and (first < 0 or min(lengths) < 0 or first + sum(lengths) + n - 1 > len(body)):
        raise WireError("vs, len: the values' places are not within the body")
    topics, keys, ints, sources = _checked_columns(doc, n, one_for_all=True)
    places = functools.partial(_places_from_lengths, first, lengths)
    return Columns(body, topics, keys, ints, values, places, sources)


def _places_from_lengths(first: int, lengths: list[int]) -> tuple[list[int], Iterable[int]]:
    """Where each value starts and ends: one comma apart, from `first` on."""
    if not lengths:
        return [], []
    starts = list(accumulate(map((1).__add__, lengths[:-1]), initial=first))
    return starts, map(operator.add, starts, lengths)


def _columns_v3(doc: dict[str, Any], body: bytes) -> Columns:
    """Version 3's columns, each checked whole (its types, its length, its indexes' range)
    before any record is built from them."""
    values: Any = doc.get("vals")
    at: Any = doc.get("at")
    if type(values) is not list or type(at) is not list:
        raise WireError('batch body v3: expected "vals" and "at" arrays')
    n = len(values)
    if len(at) != 2 * n or not set(map(type, at)) <= _INT:
        raise WireError(f"at: expected {2 * n} integers, a start and an end per value")
    starts, ends = at[0::2], at[1::2]
    if n and (min(at) < 0 or max(at) > len(body) or not all(map(operator.le, starts, ends))):
        raise WireError("at: a value's place is not within the body")
    topics, keys, ints, sources = _checked_columns(doc, n, one_for_all=False)
    return Columns(body, topics, keys, ints, values, lambda: (starts, ends), sources)


def _checked_columns(
    doc: dict[str, Any], n: int, *, one_for_all: bool
) -> tuple[list[str], list[bytes | None], list[list[int]], tuple[set[int], set[int]]]:
    """A column body's topics, keys (decoded), its five integer columns (`_V3_COLUMNS`, each
    `n` long; with `one_for_all`, the first three may be one number for every record) and the
    distinct topic indexes and partitions; WireError naming the column."""
    topics: Any = doc.get("t")
    keys: Any = doc.get("k")
    if type(topics) is not list or type(keys) is not list:
        raise WireError('batch body: expected "t" and "k" arrays')
    ints: list[list[int]] = []
    distinct: list[set[int]] = []
    for name in _V3_COLUMNS:
        column: Any = doc.get(name)
        if one_for_all and type(column) is int and name in ("ti", "ki", "p"):
            ints.append([column] * n)
            distinct.append({column} if n else set())
            continue
        if type(column) is not list:
            expected = "a number or an array" if one_for_all and name != "o" else "an array"
            raise WireError(f"{name}: expected {expected} of integers")
        if len(column) != n:
            raise WireError(f"{name}: {len(column)} numbers for {n} values")
        if name in ("ti", "ki", "p"):
            # They repeat: each column's distinct values (a set, built in C) are checked, not
            # every place; offsets and timestamps are each checked.
            distinct.append(_distinct_ints(name, column))
        elif not set(map(type, column)) <= _INT:
            raise WireError(f"{name}: expected integers")
        ints.append(column)
    topic_indexes, key_indexes, partitions = distinct
    if not all(type(t) is str for t in topics):
        raise WireError("t: expected topic names")
    if topic_indexes and not (min(topic_indexes) >= 0 and max(topic_indexes) < len(topics)):
        raise WireError(f"ti: a topic index not in t (of {len(topics)})")
    if key_indexes and not (min(key_indexes) >= 0 and max(key_indexes) < len(keys)):
        raise WireError(f"ki: a key index not in k (of {len(keys)})")
    raw_keys = [_unb64(key, f"k[{i}]") for i, key in enumerate(keys)]
    return topics, raw_keys, ints, (topic_indexes, partitions)


def _distinct_ints(name: str, column: list[Any]) -> set[int]:
    """A column's distinct values, all integers (WireError naming the column otherwise)."""
    try:
        distinct = set(column)
    except TypeError:  # an unhashable JSON array or object
        raise WireError(f"{name}: expected integers") from None
    if not set(map(type, distinct)) <= _INT:
        raise WireError(f"{name}: expected integers")
    return distinct


def _decode_v2(doc: dict[str, Any], body: bytes) -> list[WireRecord]:
    runs, topics, at = doc.get("r"), doc.get("t"), doc.get("at")
    if not (type(runs) is list and type(topics) is list and type(at) is list):
        raise WireError('batch body v2: expected "r", "t" and "at" arrays')
    if not all(type(t) is str for t in topics):
        raise WireError("t: expected topic names")
    size, n_at, n_topics, j = len(body), len(at), len(topics), 0
    keys: dict[str, bytes] = {}
    out: list[WireRecord] = []
    append = out.append
    for ri, run in enumerate(runs):
        if not (type(run) is list and len(run) == 2 and type(run[1]) is list):
            raise WireError(f"r[{ri}]: expected [key, [record, ...]]")
        key_text, records = run
        # A per: partition body has a run per change of key: each distinct key decoded once.
        key = keys.get(key_text) if type(key_text) is str else None
        if key is None:
            key = _unb64(key_text, f"r[{ri}] key")
            if key is not None:
                keys[key_text] = key
        # The body's per-record loop: each check once, in one expression where it can be;
        # the record's place (`records.index`: an equal record before it would have failed
        # first) and the words of a failure are worked out only for one.
        for rec in records:
            if type(rec) is not list or len(rec) != 7:
                raise WireError(f"r[{ri}][{records.index(rec)}]: expected [topic, partition, "
                                "offset, ts, headers, form, value]")  # fmt: skip
            ti, partition, offset, ts, headers, form, value = rec
            if not (
                type(ti) is int
                and type(partition) is int
                and type(offset) is int
                and 0 <= ti < n_topics
                and (ts is None or type(ts) is int)
            ):
                raise _coordinates_error(f"r[{ri}][{records.index(rec)}]", rec, n_topics)
            if form == INLINE_JSON and type(form) is int:
                if j + 1 >= n_at:
                    raise WireError(f"r[{ri}][{records.index(rec)}] value: inline, but no "
                                    "place for it in at")  # fmt: skip
                start, end = at[j], at[j + 1]
                if not (type(start) is int and type(end) is int and 0 <= start <= end <= size):
                    raise WireError(f"r[{ri}][{records.index(rec)}] value: at[{j}:{j + 2}] is "
                                    "not within the body")  # fmt: skip
                j += 2
                # tuple.__new__, not WireRecord(...): its generated __new__ is a Python call more.
                append(_tuple_new(WireRecord, (
                    topics[ti], partition, offset, ts, key, body[start:end],
                    _headers(headers, f"r[{ri}][{records.index(rec)}] headers") if headers else (),
                    value,
                )))  # fmt: skip
                continue
            if form == BASE64 and type(form) is int and type(value) is str:
                raw = _unb64(value, f"r[{ri}][{records.index(rec)}] value")
            elif form == TOMBSTONE and type(form) is int and value is None:
                raw = None
            else:
                raise WireError(f"r[{ri}][{records.index(rec)}] value: expected form 0 and "
                                "null, 1 and JSON, or 2 and base64")  # fmt: skip
            append(_tuple_new(WireRecord, (
                topics[ti], partition, offset, ts, key, raw,
                _headers(headers, f"r[{ri}][{records.index(rec)}] headers") if headers else (),
                UNPARSED,
            )))  # fmt: skip
    if j != n_at:
        raise WireError(f"at: {n_at} numbers for {j // 2} inline values")
    return out


def _coordinates_error(where: str, rec: list[Any], n_topics: int) -> WireError:
    """What is wrong with a v2 record's topic index, partition, offset or timestamp."""
    ti, partition, offset = rec[:3]
    if not (type(ti) is int and type(partition) is int and type(offset) is int):
        return WireError(f"{where}: expected topic index, partition and offset")
    if not 0 <= ti < n_topics:
        return WireError(f"{where}: topic index {ti} not in t")
    return WireError(f"{where} ts: expected milliseconds or null")


def _decode_v1(records: list[Any]) -> list[WireRecord]:
    out: list[WireRecord] = []
    append = out.append
    for i, r in enumerate(records):
        if type(r) is not dict:
            raise WireError(f"records[{i}]: expected an object")
        get = r.get
        topic, partition, offset, ts = get("t"), get("p"), get("o"), get("ts")
        if not (type(topic) is str and type(partition) is int and type(offset) is int):
            raise WireError(f"records[{i}]: expected t (topic), p (partition) and o (offset)")
        if ts is not None and type(ts) is not int:
            raise WireError(f"records[{i}].ts: expected milliseconds or null")
        key, value, headers = get("k"), get("v"), get("h")
        try:
            # The fast path: the field names are worded only for an error (below).
            k = None if key is None else _from_b64(key, strict_mode=True)
            v = None if value is None else _from_b64(value, strict_mode=True)
        except (binascii.Error, ValueError, TypeError):
            k = _unb64(key, f"records[{i}].k")
            v = _unb64(value, f"records[{i}].v")
        append(
            WireRecord(
                topic, partition, offset, ts, k, v,
                _headers(headers, f"records[{i}].h") if headers else (),
            )
        )  # fmt: skip
    return out


def _headers(headers: Any, what: str) -> Headers:
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) for h in headers
    ):
        raise WireError(f"{what}: expected [[name, base64 | null], ...]")
    return tuple((name, _unb64(value, what)) for name, value in headers)

"""The encoder's column path (every value inline, timestamped, headerless) writes version 4,
whose records decode to what the record-by-record path's version 2 decodes to, for one key,
runs of keys and several topics; so do version 3 bodies (written before version 4, still
read). A batch with any other record (tombstone, headers, no timestamp, a value that is not
JSON or nests too deep) is written record by record (v2). A malformed v3 or v4 body is a
WireError naming the column."""

from __future__ import annotations

import operator
import random
from itertools import accumulate
from typing import Any

import orjson
import pytest

from restate_stream.batch import wire
from restate_stream.batch.wire import WireError, WireRecord, decode_batch, encode_batch
from restate_stream.runtime.formats.json import UNPARSED

MS = 1_700_000_000_123


def _records(keys: list[bytes | None], topics: tuple[str, ...] = ("t",)) -> list[WireRecord]:
    rng = random.Random(7)
    return [
        WireRecord(
            topics[i % len(topics)],
            rng.randrange(0, 2**31),
            rng.choice([0, rng.randrange(0, 2**63)]),
            rng.choice([-1, 0, MS + i, 2**63 - 1]),
            key,
            rng.choice([b'{"seq": %d}' % i, b' [1, "\\u00e9", {"a": null}]\n', b"-0.5e3", b'"x"']),
        )
        for i, key in enumerate(keys)
    ]


CASES = {
    "one key": _records([b"k"] * 50),
    "one record": _records([b"k"]),
    "a run per record": _records([b"a", b"b", None, b"", b"\xff", b"a"] * 5),
    "runs": _records([b"a"] * 3 + [b"b"] * 4 + [None] * 2 + [b"a"]),
    "no key": _records([None] * 5),
    "two topics": _records([b"k"] * 9, topics=("t", "u.v")),
}


@pytest.mark.parametrize("records", CASES.values(), ids=CASES.keys())
def test_the_column_path_decodes_to_the_record_by_record_records(
    records: list[WireRecord],
) -> None:
    columns = tuple(zip(*records, strict=True))
    assert wire._all_inline(columns)
    body = wire._encode_inline(columns)
    assert orjson.loads(body)["v"] == 4
    v2 = wire._encode_each(records, json_values=True)
    assert orjson.loads(v2)["v"] == 2
    # The same records, values parsed the same and raw bytes exact, in the same order.
    assert decode_batch(body) == decode_batch(v2)
    assert [r._replace(parsed=UNPARSED) for r in decode_batch(body)] == records
    assert decode_batch(_v3_body(columns)) == decode_batch(v2)
    if len(records) >= 12:  # by column from 12 records
        assert encode_batch(records, json_values=True) == body


def _v3_body(columns: tuple[tuple[Any, ...], ...]) -> bytes:
    """A version 3 body, as the delivery wrote it before version 4 (a body may be in Restate's
    journal across an upgrade)."""
    topic_names, partitions, offsets, timestamps, keys, values = columns[:6]
    topics = {name: i for i, name in enumerate(dict.fromkeys(topic_names))}
    key_index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    head = orjson.dumps(
        {
            "v": 3,
            "t": list(topics),
            "k": [wire._b64(key) for key in key_index],
            "ti": list(map(topics.__getitem__, topic_names)),
            "ki": list(map(key_index.__getitem__, keys)),
            "p": partitions,
            "o": offsets,
            "ts": timestamps,
        }
    )
    opening = head[:-1] + b',"vals":['
    lengths = list(map(len, values))
    starts = list(accumulate(map((1).__add__, lengths[:-1]), initial=len(opening)))
    at = [n for pair in zip(starts, map(operator.add, starts, lengths), strict=True) for n in pair]
    return b"".join((opening, b",".join(values), b'],"at":', orjson.dumps(at), b"}"))


def test_what_every_record_shares_is_written_once() -> None:
    """A per-key body's topic, key and partition are one number each; a body of two topics
    and many keys over partitions keeps its lists."""
    one_key = [r._replace(partition=3) for r in CASES["one key"]]
    doc = orjson.loads(wire._encode_inline(tuple(zip(*one_key, strict=True))))
    assert (doc["ti"], doc["ki"], doc["p"], doc["t"], doc["k"]) == (0, 0, 3, ["t"], ["aw=="])
    assert len(doc["o"]) == len(doc["len"]) == 50
    records = CASES["a run per record"] + CASES["two topics"]
    doc = orjson.loads(wire._encode_inline(tuple(zip(*records, strict=True))))
    assert doc["t"] == ["t", "u.v"] and len(doc["ti"]) == len(records)
    assert len(doc["k"]) == 6 and len(doc["ki"]) == len(doc["p"]) == len(records)


ODD = {
    "a tombstone": WireRecord("t", 0, 1, MS, b"k", None),
    "headers": WireRecord("t", 0, 1, MS, b"k", b"1", (("h", b"v"),)),
    "no timestamp": WireRecord("t", 0, 1, None, b"k", b"1"),
    "not JSON": WireRecord("t", 0, 1, MS, b"k", b"{nope"),
    "JSON orjson refuses": WireRecord("t", 0, 1, MS, b"k", b"NaN"),
    "too deep": WireRecord("t", 0, 1, MS, b"k", b"[" * 1000 + b"]" * 1000),
}


@pytest.mark.parametrize("odd", ODD.values(), ids=ODD.keys())
def test_a_batch_with_any_other_record_is_written_record_by_record(odd: WireRecord) -> None:
    records = [*CASES["runs"], odd, *CASES["one key"]]
    assert not wire._all_inline(tuple(zip(*records, strict=True)))
    body = encode_batch(records, json_values=True)
    assert body == wire._encode_each(records, json_values=True)
    assert [r[:7] for r in decode_batch(body)] == [r[:7] for r in records]


def test_long_but_shallow_values_still_go_inline() -> None:
    value = b"[" + b",".join([b'{"a": [1, 2]}'] * 200) + b"]"  # > 1,000 bytes, 3 deep
    records = [WireRecord("t", 0, 1, MS, b"k", value), *CASES["one key"]]
    assert wire._all_inline(tuple(zip(*records, strict=True)))
    body = encode_batch(records, json_values=True)
    assert orjson.loads(body)["v"] == 4
    assert decode_batch(body) == decode_batch(wire._encode_each(records, json_values=True))


def test_only_bodies_of_twelve_records_or_more_are_built_by_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []
    encode_inline = wire._encode_inline

    def counted(columns: tuple[tuple[object, ...], ...]) -> bytes:
        built.append(len(columns[0]))
        return encode_inline(columns)

    monkeypatch.setattr(wire, "_encode_inline", counted)
    for n in (1, 11, 12, 50):
        encode_batch(CASES["one key"][:n], json_values=True)
    assert built == [12, 50]


def _v3(**fields: Any) -> bytes:
    """A well-formed two-record v3 body, with `fields` replaced."""
    doc: dict[str, Any] = {
        "v": 3, "t": ["t"], "k": ["aw==", None], "ti": [0, 0], "ki": [0, 1], "p": [0, 1],
        "o": [5, 6], "ts": [MS, MS], "vals": [1, 2], "at": [0, 1, 0, 1],
    }  # fmt: skip
    doc.update(fields)
    return orjson.dumps(doc)


def test_a_well_formed_v3_body_decodes() -> None:
    first, second = decode_batch(_v3())
    assert first == WireRecord("t", 0, 5, MS, b"k", b"{", (), 1)
    assert second == WireRecord("t", 1, 6, MS, None, b"{", (), 2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_v3(vals={}), 'batch body v3: expected "vals" and "at" arrays'),
        (_v3(t={}), 'batch body: expected "t" and "k" arrays'),
        (_v3(ti=0), "ti: expected an array of integers"),  # a number is version 4's
        (_v3(o=[5]), "o: 1 numbers for 2 values"),
        (_v3(p=[0, "1"]), "p: expected integers"),
        (_v3(ts=[MS, None]), "ts: expected integers"),
        (_v3(ti=[0, True]), "ti: expected integers"),
        (_v3(ti=[[0], 0]), "ti: expected integers"),  # not hashable
        (_v3(ki=[0, 1.5]), "ki: expected integers"),
        (_v3(p=[{}, 0]), "p: expected integers"),
        (_v3(o=[5, 6.0]), "o: expected integers"),
        (_v3(t=[1]), "t: expected topic names"),
        (_v3(ti=[0, 1]), "ti: a topic index not in t (of 1)"),
        (_v3(ki=[-1, 0]), "ki: a key index not in k (of 2)"),
        (_v3(at=[0, 1, 0]), "at: expected 4 integers"),
        (_v3(at=[0, 1, 3, 2]), "at: a value's place is not within the body"),
        (_v3(at=[0, 1, 0, 10**6]), "at: a value's place is not within the body"),
        (_v3(k=["%%", None]), "k[0]: invalid base64"),
    ],
)
def test_malformed_v3_bodies_name_the_column(body: bytes, message: str) -> None:
    with pytest.raises(WireError) as raised:
        decode_batch(body)
    assert message in str(raised.value)


def _v4(**fields: Any) -> bytes:
    """A well-formed two-record v4 body (values 1 and 2 at 2 and 4), with `fields` replaced."""
    doc: dict[str, Any] = {
        "v": 4, "t": ["t"], "k": ["aw==", None], "ti": 0, "ki": [0, 1], "p": [0, 1],
        "o": [5, 6], "ts": [MS, MS], "vals": [1, 2], "vs": 2, "len": [1, 1],
    }  # fmt: skip
    doc.update(fields)
    return orjson.dumps(doc)


def test_a_well_formed_v4_body_decodes() -> None:
    body = _v4()
    first, second = decode_batch(body)
    assert first == WireRecord("t", 0, 5, MS, b"k", body[2:3], (), 1)
    assert second == WireRecord("t", 1, 6, MS, None, body[4:5], (), 2)
    first, second = decode_batch(_v4(ki=1, p=3))
    assert (first.key, first.partition, second.key, second.partition) == (None, 3, None, 3)
    assert decode_batch(_v4(vals=[], len=[], o=[], ts=[], ki=[], p=[])) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_v4(vals={}), 'batch body v4: expected "vals" and "len" arrays and a "vs" number'),
        (_v4(vs="2"), 'batch body v4: expected "vals" and "len" arrays and a "vs" number'),
        (_v4(len=[1]), "len: expected 2 integers"),
        (_v4(len=[1, True]), "len: expected 2 integers"),
        (_v4(len=[1, -1]), "vs, len: the values' places are not within the body"),
        (_v4(vs=-1), "vs, len: the values' places are not within the body"),
        (_v4(vs=10**6), "vs, len: the values' places are not within the body"),
        (_v4(len=[1, 10**6]), "vs, len: the values' places are not within the body"),
        (_v4(ti=True), "ti: expected a number or an array of integers"),
        (_v4(ti=1), "ti: a topic index not in t (of 1)"),
        (_v4(ki=-1), "ki: a key index not in k (of 2)"),
        (_v4(p="0"), "p: expected a number or an array of integers"),
        (_v4(o=5), "o: expected an array of integers"),
        (_v4(p=[0]), "p: 1 numbers for 2 values"),
        (_v4(ts=[MS, None]), "ts: expected integers"),
        (_v4(k=["%%", None]), "k[0]: invalid base64"),
    ],
)
def test_malformed_v4_bodies_name_the_column(body: bytes, message: str) -> None:
    with pytest.raises(WireError) as raised:
        decode_batch(body)
    assert message in str(raised.value)

"""Window and table bindings on batched bindings (`batch:` with `per: key`), in the kit: one
invocation folds a key's batch in order, a record that cannot be folded is dead-lettered or
dropped alone while the rest count, and a redelivered batch counts nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from restate_stream.bindings import BindingsError, parse_bindings
from restate_stream.testing import BindingsKit, KitRecord, bindings_yaml

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
BATCH = {"max_records": 100, "max_wait": "100ms"}


def kit(tmp_path: Path, **binding: Any) -> BindingsKit:
    path = tmp_path / "bindings.yaml"
    binding = {"name": "clicks", "topic": "clicks", "batch": BATCH, **binding}
    path.write_text(
        bindings_yaml(clusters={"local": "127.0.0.1:9092"}, bindings=[binding]),
    )
    return BindingsKit.load(path, [])


def at(second: float, value: Any = None, key: str = "a", offset: int | None = None) -> KitRecord:
    return KitRecord(
        value if value is not None else {},
        key,
        timestamp=T0 + timedelta(seconds=second),
        offset=offset,
    )


async def test_a_batch_folds_each_key_in_order_and_closes_by_stream_time_and_timer(
    tmp_path: Path,
) -> None:
    window = {"type": "tumbling", "size": "10s", "aggregate": "sum", "field": "n", "to": "out"}
    k = kit(tmp_path, window=window)
    records = [at(1, {"n": 1}), at(12, {"n": 5}), at(3, {"n": 2}, key="b"), at(4, {"n": 3})]
    deliveries = await k.deliver_batch("clicks", records)
    assert [d.object_key for d in deliveries] == ["a", "b"]  # one invocation per key
    # a's record at 12 s passed its first window's end: emitted in the same invocation; the
    # record at 4 s after it was late (grace 0) and dropped alone, the rest counted.
    assert [(s.key, s.value["start"], s.value["value"]) for s in k.published("out")] == [
        ("a", T0_MS, 1)
    ]
    assert [o.decision for o in deliveries[0].outcomes] == ["applied", "applied", "dropped"]
    assert deliveries[0].outcomes[2].cause == "LateRecord"
    await k.fire_timers()  # the rest closes by its timers: b's window and a's second
    got = {(s.key, s.value["start"]): s.value["value"] for s in k.published("out")}
    assert got == {("a", T0_MS): 1, ("a", T0_MS + 10_000): 5, ("b", T0_MS): 2}


async def test_a_record_without_its_field_is_dead_lettered_alone(tmp_path: Path) -> None:
    window = {"type": "tumbling", "size": "10s", "aggregate": "sum", "field": "n", "to": "out"}
    k = kit(tmp_path, window=window, dead_letter="clicks.dlq")
    (d,) = await k.deliver_batch("clicks", [at(1, {"n": 1}), at(2, {"m": 7}), at(3, {"n": 2})])
    assert [o.decision for o in d.outcomes] == ["applied", "dead-lettered", "applied"]
    (letter,) = d.dead_letters
    assert (letter.error.type, letter.source.offset) == ("WindowValueError", 1)
    await k.fire_timers()
    assert [s.value["value"] for s in k.published("out")] == [3]


async def test_a_redelivered_batch_counts_nothing_twice(tmp_path: Path) -> None:
    k = kit(tmp_path, window={"type": "tumbling", "size": "10s", "to": "out"})
    first = [at(1, offset=0), at(2, offset=1)]
    await k.deliver_batch("clicks", first)
    again = await k.deliver_batch("clicks", [*first, at(3, offset=2)])  # after a crash
    assert [o.decision for o in again[0].outcomes] == ["redelivered", "redelivered", "applied"]
    await k.fire_timers()
    assert [s.value["value"] for s in k.published("out")] == [3]


async def test_a_batched_table_keeps_each_keys_last_value(tmp_path: Path) -> None:
    k = kit(tmp_path, table=True)
    await k.deliver_batch(
        "clicks",
        [
            KitRecord({"v": 1}, "p1"),
            KitRecord({"v": 1}, "p2"),
            KitRecord({"v": 2}, "p1"),
            KitRecord(None, "p2", tombstone=True),
        ],
    )
    assert k.table("clicks", "p1") == {"v": 2}
    assert k.table("clicks", "p2") is None


def test_a_batched_window_takes_batches_per_key_only() -> None:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9092"},
        bindings=[
            {
                "name": "clicks",
                "topic": "clicks",
                "batch": {**BATCH, "per": "partition"},
                "window": {"type": "tumbling", "size": "10s", "to": "out"},
            }
        ],
    )
    with pytest.raises(BindingsError) as caught:
        parse_bindings(text, Path("bindings.yaml"))
    (problem,) = caught.value.problems
    assert problem.field == "bindings[0].batch.per"
    assert "a batched window binding takes batches per: key" in problem.message

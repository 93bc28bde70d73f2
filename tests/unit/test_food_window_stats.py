"""The food-ordering demo's own check of its windows (examples/food_ordering/window_stats.py):
what each window must hold, computed from the published records, and what differs."""

from __future__ import annotations

import json
from datetime import timedelta

from connectors.consume import ConsumedRecord
from examples.food_ordering.window_stats import (
    Expected,
    WindowResult,
    differences,
    expected,
    window_starts,
)
from restate_stream.windows.settings import WindowSpec

TUMBLING = WindowSpec(type="tumbling", size=timedelta(seconds=10), to="counts")
HOPPING = WindowSpec(
    type="hopping",
    size=timedelta(seconds=10),
    advance=timedelta(seconds=5),
    aggregate="mean",
    field="speed",
    to="speeds",
)


def fix(key: str, at_ms: int, speed: float, offset: int = 0) -> ConsumedRecord:
    envelope = {"specversion": "1.0", "id": f"e{offset}", "data": {"speed": speed}}
    return ConsumedRecord("t", 0, offset, key.encode(), json.dumps(envelope).encode(), at_ms)


def test_window_starts_are_epoch_aligned_and_hop() -> None:
    assert window_starts(12_345, 10_000, 10_000) == [10_000]
    assert window_starts(12_345, 10_000, 5_000) == [5_000, 10_000]
    assert window_starts(10_000, 10_000, 5_000) == [5_000, 10_000]  # start inclusive, end not


def test_expected_counts_and_means_per_key_and_window_of_the_keys_asked_for() -> None:
    records = [fix("d1", 1_000, 1.0, 0), fix("d1", 6_000, 0.0, 1), fix("d2", 2_000, 9.0, 2)]
    assert expected(records, TUMBLING, {"d1"}) == {("d1", 0): Expected(2, 2, 10_000)}
    means = expected(records, HOPPING, {"d1"}, lambda data: data["speed"])
    assert means == {
        ("d1", -5_000): Expected(1, 1.0, 5_000),
        ("d1", 0): Expected(2, 0.5, 10_000),
        ("d1", 5_000): Expected(1, 0.0, 15_000),
    }


def test_differences_name_missing_extra_and_wrong_windows() -> None:
    want = {("r1", 0): Expected(2, 2, 10_000), ("r1", 10_000): Expected(1, 1, 20_000)}
    exact = [WindowResult("r1", 0, 10_000, 2, 2), WindowResult("r1", 10_000, 20_000, 1, 1)]
    other_key = WindowResult("r2", 0, 10_000, 5, 5)
    assert differences([*exact, other_key], want, {"r1"}) == []
    wrong = [WindowResult("r1", 0, 10_000, 3, 3), WindowResult("r1", 20_000, 30_000, 1, 1)]
    assert differences(wrong, want, {"r1"}) == [
        "r1: window at 10000 not emitted",
        "r1: window at 20000 emitted, no record falls in it",
        "r1: window at 0 holds 3 record(s), value 3; published: 2, value 2",
    ]

    # While records still come, only the windows that ended before a moment are compared.
    assert differences(exact[:1], want, {"r1"}, ended_before=15_000) == []
    assert differences([], want, {"r1"}, ended_before=15_000) == ["r1: window at 0 not emitted"]

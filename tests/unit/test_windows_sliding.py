"""Sliding windows, as pure logic: a window of `size` ending at each record, holding the
key's records in it whichever order they come in; late records, timers, and what is kept."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from restate_stream.windows.aggregate import WindowValueError, aggregation
from restate_stream.windows.assign import Window
from restate_stream.windows.sliding import KeySliding

SIZE = 10_000
COUNT = aggregation("count", None, None)


def counts(key: KeySliding) -> dict[int, int]:
    """Each open window's count, by the time of the record it ends at (end - 1)."""
    return {o.window.end - 1: o.acc for o in key.open.values()}


def test_each_record_has_the_window_of_size_ending_with_it() -> None:
    key = KeySliding(SIZE, grace_ms=60_000)
    assert key.add(5_000, {}, COUNT).opened == [Window(-4_999, 5_001)]
    key.add(12_000, {}, COUNT)
    key.add(15_000, {}, COUNT)  # 10 s after 5 s: not in its window ([5.001s, 15.001s))
    assert counts(key) == {5_000: 1, 12_000: 2, 15_000: 2}
    same = key.add(15_000, {}, COUNT)  # the same millisecond: the same window
    assert same.opened == [] and counts(key)[15_000] == 3


def test_an_out_of_order_record_gets_its_window_and_counts_in_the_later_ones() -> None:
    agg = aggregation("collect", "n", None)
    key = KeySliding(SIZE, grace_ms=60_000)
    for t, n in [(1_000, 1), (9_000, 3), (14_000, 4)]:
        key.add(t, {"n": n}, agg)
    added = key.add(5_000, {"n": 2}, agg)
    assert added.opened == [Window(-4_999, 5_001)]
    # its own window is built from what came before it (in time order), and the windows of
    # 9 s and 14 s that reach back over 5 s take it
    assert [(o.window.end - 1, o.acc) for o in added.updated] == [
        (5_000, [1, 2]),
        (9_000, [1, 3, 2]),
        (14_000, [3, 4, 2]),
    ]


def test_a_record_whose_window_closed_is_late_and_counted_nowhere() -> None:
    key = KeySliding(SIZE, grace_ms=2_000)
    key.add(1_000, {}, COUNT)
    closing = key.add(5_000, {}, COUNT)  # stream time 5 s: [.., 1.001s) + 2 s passed
    assert [o.window.end - 1 for o in closing.closed] == [1_000]
    late = key.add(2_000, {}, COUNT)  # 2.001 + 2 <= 5: late, though 5 s's window reaches it
    assert late.late and late.updated == []
    assert counts(key) == {5_000: 2}
    in_grace = key.add(3_500, {}, COUNT)
    assert not in_grace.late and counts(key) == {3_500: 2, 5_000: 3}


def test_a_window_closed_by_its_timer_is_emitted_once_and_its_time_is_then_late() -> None:
    key = KeySliding(SIZE, grace_ms=0)
    window = key.add(1_000, {}, COUNT).opened[0]
    assert key.timer_delay_ms(window) == 1
    assert key.close(window.start, window.end + 5) is None  # not the window it names
    closed = key.close(window.start, window.end)
    assert closed is not None and closed.acc == 1
    assert key.close(window.start, window.end) is None
    restored = KeySliding.from_json(key.to_json(), SIZE, 0)
    assert restored.add(1_000, {}, COUNT).late
    # a later record's window still holds the first record, kept for it
    assert restored.add(1_000 + SIZE - 1, {}, COUNT).updated[0].acc == 2


def test_records_are_kept_only_while_a_window_that_can_open_reaches_them() -> None:
    key = KeySliding(SIZE, grace_ms=1_000)
    for t in (0, 1, 4_000, 8_000):
        key.add(t, {}, COUNT)
    key.add(11_000, {}, COUNT)  # horizon 11 - 10 - 1 = 0: the record at 0 is let go
    assert sorted(key.kept) == [1, 4_000, 8_000, 11_000]
    # the earliest record not late yet is at 10 s, and its window starts at 1 ms
    assert key.add(9_999, {}, COUNT).late
    added = key.add(10_000, {}, COUNT)
    assert [(o.window, o.acc) for o in added.updated] == [
        (Window(1, 10_001), 4),  # 1 ms, 4 s, 8 s and itself
        (Window(1_001, 11_001), 4),  # 11 s's window takes it
    ]


def test_shuffled_records_give_the_windows_of_the_truth() -> None:
    rng = random.Random(3)
    times = [rng.randrange(0, 300_000) for _ in range(400)]
    per_ms = Counter(times)
    expected = {t: sum(n for u, n in per_ms.items() if t - SIZE < u <= t) for t in per_ms}
    key = KeySliding(SIZE, grace_ms=300_000)  # grace covers all the disorder
    emitted: dict[int, int] = {}
    for t in times:
        for o in key.add(t, {}, COUNT).closed:
            emitted[o.window.end - 1] = o.acc
    for o in list(key.open.values()):
        assert key.close(o.window.start, o.window.end) is not None
        emitted[o.window.end - 1] = o.acc
    assert emitted == expected


def test_a_value_the_aggregation_refuses_changes_nothing() -> None:
    key = KeySliding(SIZE, grace_ms=0)
    key.add(1_000, {"n": 1}, aggregation("max", "n", None))
    before = key.to_json()
    with pytest.raises(WindowValueError, match="not a number"):
        key.add(2_000, {"n": "x"}, aggregation("max", "n", None))
    assert key.to_json() == before

"""The pure window logic: which windows a record falls in, when they close, what is late, and
what the aggregations add up to, with records out of order."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from restate_stream.windows import Reducer
from restate_stream.windows.aggregate import WindowValueError, aggregation
from restate_stream.windows.assign import KeyWindows, Window, windows_of

MIN = 60_000


def test_a_tumbling_window_is_the_one_aligned_slot_of_its_size() -> None:
    assert windows_of(0, MIN, MIN) == [Window(0, MIN)]
    assert windows_of(MIN - 1, MIN, MIN) == [Window(0, MIN)]
    assert windows_of(MIN, MIN, MIN) == [Window(MIN, 2 * MIN)]
    assert windows_of(-1, MIN, MIN) == [Window(-MIN, 0)]


def test_hopping_windows_overlap_every_advance() -> None:
    assert windows_of(25_000, MIN, 20_000) == [
        Window(-20_000, 40_000),
        Window(0, MIN),
        Window(20_000, 80_000),
    ]
    # an advance that does not divide the size: ceil(size / advance) windows at most, and
    # the end is exclusive ([-40, 10) does not hold 10)
    assert windows_of(10, 50, 20) == [Window(-20, 30), Window(0, 50)]
    assert windows_of(5, 50, 20) == [Window(-40, 10), Window(-20, 30), Window(0, 50)]


def test_out_of_order_records_within_grace_count_and_the_window_closes_by_stream_time() -> None:
    count = aggregation("count", None, None)
    key = KeyWindows(MIN, MIN, grace_ms=10_000)
    assert key.add(50_000, {}, count).opened == [Window(0, MIN)]
    assert key.add(65_000, {}, count).opened == [Window(MIN, 2 * MIN)]
    late_but_in_grace = key.add(30_000, {}, count)  # stream time 65s < 60s + 10s
    assert not late_but_in_grace.late and late_but_in_grace.opened == []
    closing = key.add(70_000, {}, count)  # stream time reaches 60s + 10s: [0, 60s) closes
    assert [(o.window, o.acc, o.records) for o in closing.closed] == [(Window(0, MIN), 2, 2)]
    assert key.add(59_000, {}, count).late  # past grace: late, counted nowhere
    assert key.open[MIN].acc == 2


def test_a_window_closed_by_its_timer_takes_no_more_records_and_closes_once() -> None:
    count = aggregation("count", None, None)
    key = KeyWindows(MIN, MIN, grace_ms=0)
    key.add(1_000, {}, count)
    closed = key.close(0)
    assert closed is not None and closed.acc == 1
    assert key.close(0) is None  # the timer firing again: nothing to emit
    assert key.add(2_000, {}, count).late  # the stream time never passed it, the timer did
    restored = KeyWindows.from_json(key.to_json(), MIN, MIN, 0)
    assert restored.add(3_000, {}, count).late
    # once the stream time passes the window, the memory of its timer is dropped
    restored.add(MIN + 5_000, {}, count)
    assert restored.closed == {}


def test_the_timer_waits_the_event_time_left_until_end_plus_grace() -> None:
    key = KeyWindows(MIN, MIN, grace_ms=10_000)
    key.add(45_000, {}, aggregation("count", None, None))
    assert key.timer_delay_ms(Window(0, MIN)) == 25_000
    key.stream_time = 200_000
    assert key.timer_delay_ms(Window(0, MIN)) == 0


def test_shuffled_records_give_the_counts_of_the_truth() -> None:
    rng = random.Random(7)
    times = [rng.randrange(0, 10 * MIN) for _ in range(2_000)]
    truth = Counter(t // MIN for t in times)
    key = KeyWindows(MIN, MIN, grace_ms=10 * MIN)  # grace covers all the disorder
    count = aggregation("count", None, None)
    emitted: dict[int, int] = {}
    for t in times:
        for o in key.add(t, {}, count).closed:
            emitted[o.window.start // MIN] = o.acc
    for start in list(key.open):
        o = key.close(start)
        assert o is not None
        emitted[start // MIN] = o.acc
    assert emitted == dict(truth)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("sum", 12), ("min", 2), ("max", 7), ("mean", 4.0), ("collect", [3, 7, 2])],
)
def test_aggregations_of_a_field(kind: str, expected: Any) -> None:
    agg = aggregation(kind, "order.cents", None)
    acc = agg.initial()
    for cents in (3, 7, 2):
        acc = agg.add(acc, {"order": {"cents": cents}})
    assert agg.result(acc) == expected


def test_a_value_without_the_field_is_refused_without_changing_the_windows() -> None:
    key = KeyWindows(MIN, MIN, 0)
    with pytest.raises(WindowValueError, match="no field 'cents'"):
        key.add(1_000, {"amount": 1}, aggregation("sum", "cents", None))
    with pytest.raises(WindowValueError, match="not a number"):
        key.add(1_000, {"cents": "1"}, aggregation("sum", "cents", None))
    assert key.stream_time is None and key.open == {}


@dataclass
class Totals:
    orders: int = 0
    cents: int = 0


@dataclass
class Order:
    cents: int


def add_order(totals: Totals, order: Order) -> Totals:
    return Totals(totals.orders + 1, totals.cents + order.cents)


def test_a_typed_reducer_keeps_its_running_value_as_json() -> None:
    agg = aggregation("reducer", None, Reducer(initial=Totals, reduce=add_order))
    assert agg.value_type is Order
    acc = agg.add(agg.add(agg.initial(), Order(5)), Order(7))
    assert acc == {"orders": 2, "cents": 12}
    assert Reducer(initial=Totals, reduce=lambda a: a).problem() is not None  # type: ignore[arg-type,return-value]

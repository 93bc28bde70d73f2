"""Session windows, as pure logic: records less than `gap` apart form one session, a record
that bridges two sessions merges them (their aggregates merged), a session closes by the
stream time or by its timer, and a timer set for a session that grew since does nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from restate_stream.windows import Reducer
from restate_stream.windows.aggregate import WindowValueError, aggregation
from restate_stream.windows.assign import Window
from restate_stream.windows.sessions import KeySessions

GAP = 10_000
COUNT = aggregation("count", None, None)


def spans(key: KeySessions) -> list[tuple[int, int, Any]]:
    return [(o.window.start, o.window.end, o.acc) for _, o in sorted(key.open.items())]


def test_records_less_than_gap_apart_are_one_session_ending_gap_after_the_last() -> None:
    key = KeySessions(GAP, grace_ms=0)
    assert key.add(1_000, {}, COUNT).opened == [Window(1_000, 11_000)]
    grown = key.add(10_999, {}, COUNT)  # 9_999 ms after: the same session, grown
    assert grown.opened == [Window(1_000, 20_999)]  # its timer is to be set again
    assert spans(key) == [(1_000, 20_999, 2)]
    inside = key.add(5_000, {}, COUNT)  # out of order, inside: the session does not change
    assert inside.opened == [] and [o.acc for o in inside.updated] == [3]
    # exactly gap after the last record: the session has ended (stream time 20_999 reaches its
    # end), it is emitted, and the record starts another
    apart = key.add(20_999, {}, COUNT)
    assert [(o.window, o.acc) for o in apart.closed] == [(Window(1_000, 20_999), 3)]
    assert spans(key) == [(20_999, 30_999, 1)]


def test_a_record_that_bridges_two_sessions_merges_them_and_their_aggregates() -> None:
    agg = aggregation("mean", "n", None)
    key = KeySessions(GAP, grace_ms=60_000)
    key.add(0, {"n": 1}, agg)
    key.add(30_000, {"n": 5}, agg)
    key.add(2_000, {"n": 3}, agg)
    assert spans(key) == [
        (0, 12_000, {"sum": 4, "count": 2}),
        (30_000, 40_000, {"sum": 5, "count": 1}),
    ]
    key.add(11_000, {"n": 7}, agg)  # the first grows to [0, 21s)
    bridged = key.add(20_500, {"n": 4}, agg)  # [20.5s, 30.5s) overlaps both
    (session,) = bridged.updated
    assert bridged.opened == [Window(0, 40_000)]
    assert (session.window, agg.result(session.acc), session.records) == (Window(0, 40_000), 4, 5)
    assert list(key.open) == [0]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("sum", 28), ("min", 1), ("max", 7), ("mean", 4.0), ("collect", [1, 2, 6, 3, 7, 4, 5])],
)
def test_every_aggregation_merges_sessions_in_time_order(kind: str, expected: Any) -> None:
    agg = aggregation(kind, "n", None)
    key = KeySessions(GAP, grace_ms=60_000)
    for t, n in [(0, 1), (5_000, 2), (20_000, 3), (36_000, 4), (45_000, 5)]:
        key.add(t, {"n": n}, agg)
    assert [(s, e) for s, e, _ in spans(key)] == [(0, 15_000), (20_000, 30_000), (36_000, 55_000)]
    key.add(12_000, {"n": 6}, agg)  # bridges the first two
    key.add(28_000, {"n": 7}, agg)  # bridges those and the third
    ((start, end, acc),) = spans(key)
    assert (start, end, agg.result(acc)) == (0, 55_000, expected)


def test_a_session_closed_by_its_timer_is_emitted_once_and_a_stale_timer_does_nothing() -> None:
    key = KeySessions(GAP, grace_ms=5_000)
    first = key.add(1_000, {}, COUNT).opened[0]
    assert key.timer_delay_ms(first) == GAP + 5_000
    grown = key.add(4_000, {}, COUNT).opened[0]
    assert grown == Window(1_000, 14_000) and key.timer_delay_ms(grown) == GAP + 5_000
    assert key.close(first.start, first.end) is None  # set for [1s, 11s): stale, still open
    assert spans(key) == [(1_000, 14_000, 2)]
    closed = key.close(grown.start, grown.end)
    assert closed is not None and (closed.window, closed.acc) == (grown, 2)
    assert key.close(grown.start, grown.end) is None  # firing again: nothing
    # the session was emitted: a record that would join it is late, even restored from JSON
    restored = KeySessions.from_json(key.to_json(), GAP, 5_000)
    assert restored.add(13_000, {}, COUNT).late
    assert restored.open == {}
    # a record apart from it starts a new session; once the stream time passes the closed
    # one's end + grace, its memory is dropped
    assert not restored.add(30_000, {}, COUNT).late
    assert restored.closed == {}


def test_a_record_past_its_sessions_end_plus_grace_is_late() -> None:
    key = KeySessions(GAP, grace_ms=2_000)
    key.add(0, {}, COUNT)
    closing = key.add(12_000, {}, COUNT)  # stream time reaches [0, 10s) + 2 s grace
    assert [o.window for o in closing.closed] == [Window(0, GAP)]
    # [9s, 19s) is within grace (19 + 2 > 12) but would join the emitted session: late
    assert key.add(9_000, {}, COUNT).late
    assert spans(key) == [(12_000, 22_000, 1)]
    in_grace = key.add(10_500, {}, COUNT)  # [10.5s, 20.5s): clear of [0, 10s), in grace
    assert not in_grace.late and in_grace.opened == [Window(10_500, 22_000)]
    assert spans(key) == [(10_500, 22_000, 2)]
    assert key.add(-5_000, {}, COUNT).late  # [-5s, 5s) + grace passed long ago


def test_a_value_the_aggregation_refuses_changes_nothing() -> None:
    key = KeySessions(GAP, grace_ms=0)
    key.add(1_000, {"n": 1}, aggregation("sum", "n", None))
    with pytest.raises(WindowValueError, match="no field 'n'"):
        key.add(50_000, {}, aggregation("sum", "n", None))
    assert key.stream_time == 1_000 and spans(key) == [(1_000, 11_000, 1)]


def test_shuffled_records_give_the_sessions_of_the_truth() -> None:
    rng = random.Random(11)
    times = sorted({rng.randrange(0, 600_000) for _ in range(300)})
    truth: list[list[int]] = []
    for t in times:  # sessions from the sorted times: a gap of GAP or more splits them
        if truth and t - truth[-1][-1] < GAP:
            truth[-1].append(t)
        else:
            truth.append([t])
    expected = {(s[0], s[-1] + GAP): len(s) for s in truth}
    shuffled = times[:]
    rng.shuffle(shuffled)
    key = KeySessions(GAP, grace_ms=600_000)  # grace covers all the disorder
    emitted: dict[tuple[int, int], int] = {}
    for t in shuffled:
        for o in key.add(t, {}, COUNT).closed:
            emitted[(o.window.start, o.window.end)] = o.acc
    for o in list(key.open.values()):
        assert key.close(o.window.start, o.window.end) is not None
        emitted[(o.window.start, o.window.end)] = o.acc
    assert emitted == expected


@dataclass
class Visit:
    pages: int = 0


def count_page(visit: Visit, page: dict[str, str]) -> Visit:
    return Visit(visit.pages + 1)


def both(earlier: Visit, later: Visit) -> Visit:
    return Visit(earlier.pages + later.pages)


def test_a_reducer_with_merge_merges_sessions_through_its_json() -> None:
    agg = aggregation("reducer", None, Reducer(initial=Visit, reduce=count_page, merge=both))
    key = KeySessions(GAP, grace_ms=GAP)
    for t in (0, 15_000, 8_000):
        key.add(t, {"page": "/"}, agg)
    assert spans(key) == [(0, 25_000, {"pages": 3})]

"""The windows peer benchmark's pure parts (benchmarks/windows_peer.py): the records it
produces, the truth computed from them, reading both processors' results, the verdict on what
was emitted, and its table."""

from __future__ import annotations

import json
from collections import Counter

from benchmarks.windows_peer import Emitted, Row, compare, parse_result, plan, table, truth

SIZE = 1000


def test_records_run_in_event_time_order_over_the_span_round_robin_over_keys() -> None:
    produced = plan(6, 3, 10_000, 3_000)
    assert produced == [
        ("key-0", 10_000),
        ("key-1", 10_500),
        ("key-2", 11_000),
        ("key-0", 11_500),
        ("key-1", 12_000),
        ("key-2", 12_500),
    ]


def test_the_truth_counts_each_keys_records_per_tumbling_window() -> None:
    produced = [("a", 10_000), ("a", 10_999), ("a", 11_000), ("b", 10_500)]
    assert truth(produced, SIZE) == Counter({("a", 10_000): 2, ("a", 11_000): 1, ("b", 10_000): 1})


def test_both_processors_results_are_read() -> None:
    envelope = {"id": "x", "data": {"key": "a", "start": 1000, "end": 2000, "value": 3}}
    assert parse_result(b"a", json.dumps(envelope).encode()) == Emitted("a", 1000, 3, "x")
    quix = {"start": 2000, "end": 3000, "value": 4}
    assert parse_result(b"b", json.dumps(quix).encode()) == Emitted("b", 2000, 4)


def test_exact_only_when_every_window_is_emitted_once_with_its_count() -> None:
    expected = Counter({("a", 0): 2, ("a", 1000): 1, ("b", 0): 5})
    exact = [Emitted("a", 0, 2), Emitted("a", 1000, 1), Emitted("b", 0, 5), Emitted("b", 9000, 1)]
    assert compare(expected, exact).exact  # the closing record's own window is not judged
    assert str(compare(expected, exact)) == "exact"

    off = [Emitted("a", 0, 2), Emitted("a", 0, 2), Emitted("b", 0, 6)]
    verdict = compare(expected, off)
    assert not verdict.exact
    assert (verdict.missing, verdict.doubled, verdict.wrong) == (
        [("a", 1000)],
        [("a", 0)],
        [("b", 0)],
    )
    assert str(verdict) == "NOT exact: 1 missing, 1 emitted twice, 1 with another count"


def test_a_window_repeated_as_one_event_is_told_apart_from_one_emitted_twice() -> None:
    expected = Counter({("a", 0): 2, ("b", 0): 1})
    same_id = [Emitted("a", 0, 2, "e1"), Emitted("a", 0, 2, "e1")]
    two_ids = [Emitted("b", 0, 1, "e2"), Emitted("b", 0, 1, "e3")]
    verdict = compare(expected, same_id + two_ids)
    assert (verdict.repeated, verdict.doubled, verdict.wrong) == ([("a", 0)], [("b", 0)], [])
    assert str(verdict) == "NOT exact: 1 emitted twice, 1 repeated with their event id"


def test_the_table_has_a_row_per_processor_and_says_what_did_not_run() -> None:
    rows = [
        Row("restate-stream", 812.4, 3.21, "after 2.1s", "exact"),
        Row("Quix Streams (at-least-once)", 40_123.0, 0.05, "never within 30s (90/110 windows)"),
    ]
    lines = table(rows, 1000, 500)
    assert lines[0].startswith("| tumbling count, 1000 ms windows, grace 500 ms |")
    assert lines[2] == "| restate-stream | 812 | 3.210 | after 2.1s | exact |"
    assert lines[3].endswith("| never within 30s (90/110 windows) | not run |")

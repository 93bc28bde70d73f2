"""librdkafka's repeated lines (a refused login on every retry) are logged once per window,
the next line counting those left out."""

from __future__ import annotations

import logging

import pytest

from connectors.logs import LIBRDKAFKA, RepeatedLines

LEFT_OUT = "left out before it: %d more like the last line"
REFUSED = "FAIL [rdkafka#producer-1]: SASL authentication error (after %dms in state AUTH_REQ)"


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("connectors.librdkafka", logging.ERROR, __file__, 1, msg, args, None)


def test_a_line_like_the_last_is_left_out_and_counted_by_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("connectors.logs.time.monotonic", lambda: clock[0])
    repeats = RepeatedLines(window=60)
    kept = []
    for after in (301, 302, 300, 301):  # the same line but for its numbers
        record = _record(REFUSED, after)
        if repeats.filter(record):
            kept.append(record.getMessage())
        clock[0] += 0.3
    other = _record("Broker transport failure")
    assert repeats.filter(other)
    assert kept == [REFUSED % 301]
    assert other.getMessage() == f"Broker transport failure [{LEFT_OUT % 3}]"
    # Within the window it is left out again; once the window passed, it is logged again.
    assert not repeats.filter(_record("Broker transport failure"))
    clock[0] += 61
    again = _record("Broker transport failure")
    assert repeats.filter(again)
    assert again.getMessage() == f"Broker transport failure [{LEFT_OUT % 1}]"


def test_debug_lines_are_all_kept() -> None:
    repeats = RepeatedLines(window=60)
    lines = [_record("Fetch backoff for %dms", ms) for ms in (10, 10, 10)]
    for line in lines:
        line.levelno = logging.DEBUG
    assert all(repeats.filter(line) for line in lines)


def test_the_librdkafka_logger_has_the_filter() -> None:
    assert any(isinstance(f, RepeatedLines) for f in LIBRDKAFKA.filters)
